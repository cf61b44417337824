// What the machine must have for nested Xen. A missing piece is an error that names the exact
// package to install: the harness never skips.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian packages the harness needs on the outer machine (python3 runs Xen's stream verifier). */
export const APT_PACKAGES = ['qemu-system-x86', 'busybox-static', 'cpio', 'python3', 'nats-server'];

interface Requirement {
  what: string;
  aptPackage: string;
  present: () => boolean;
}

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

const REQUIREMENTS: Requirement[] = [
  { what: 'qemu-system-x86_64', aptPackage: 'qemu-system-x86', present: () => onPath('qemu-system-x86_64') },
  { what: 'a static busybox at /bin/busybox', aptPackage: 'busybox-static', present: () => isStaticBusybox('/bin/busybox') },
  { what: 'cpio', aptPackage: 'cpio', present: () => onPath('cpio') },
  { what: 'timeout (coreutils)', aptPackage: 'coreutils', present: () => onPath('timeout') },
  { what: 'apt-get and dpkg (to fetch the nested root)', aptPackage: 'apt', present: () => onPath('apt-get') && onPath('dpkg') },
  { what: '/usr/bin/python3 (Xen verify-stream-v2)', aptPackage: 'python3', present: () => existsSync('/usr/bin/python3') },
  {
    what: 'nats-server',
    aptPackage: 'nats-server',
    present: () => onPath('nats-server') || existsSync('/usr/sbin/nats-server'),
  },
];

function isStaticBusybox(path: string): boolean {
  if (!existsSync(path)) return false;
  const ldd = spawnSync('ldd', [path], { encoding: 'utf8' });
  return /not a dynamic executable|statically linked/.test(`${ldd.stdout}${ldd.stderr}`);
}

/** Throws one error listing every missing prerequisite and the apt-get line that installs them. */
export function checkPrerequisites(): void {
  const missing = REQUIREMENTS.filter((r) => !r.present());
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((m) => m.aptPackage))];
  throw new Error(`missing prerequisites: ${missing.map((m) => m.what).join(', ')}; install with: apt-get install -y ${packages.join(' ')}`);
}
