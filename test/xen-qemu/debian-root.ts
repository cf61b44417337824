// The nested hosts' software: Debian bookworm's Xen 4.17 hypervisor, tools and libraries and the
// Debian 6.1 kernel, fetched with `apt-get download` and unpacked with `dpkg -x` into a cache
// folder (no system install). Fetched once; later runs reuse the cache.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const XEN_PACKAGES = [
  'xen-hypervisor-4.17-amd64',
  'xen-utils-4.17',
  'xen-utils-common',
  'xenstore-utils',
  'libxencall1',
  'libxenevtchn1',
  'libxenforeignmemory1',
  'libxengnttab1',
  'libxenmisc4.17',
  'libxenstore4',
  'libxentoollog1',
  'libxenhypfs1',
  'libxendevicemodel1',
  'libxentoolcore1',
  'libyajl2',
];

export interface DebianRoot {
  /** The unpacked packages. */
  root: string;
  /** The hypervisor, gzipped as Debian ships it (QEMU's multiboot loader needs it unpacked). */
  xenGz: string;
  /** Dom0's and the domU's kernel. */
  vmlinuz: string;
  kernelRelease: string;
  /** Xen's stream verifier and the python modules it imports. */
  verifyStream: string;
  pythonPath: string;
}

/** Returns the cached root, fetching and unpacking it first when absent. */
export function ensureDebianRoot(cacheDir: string, log: (line: string) => void): DebianRoot {
  const root = join(cacheDir, 'root');
  if (!existsSync(join(cacheDir, 'root.complete'))) {
    log(`fetching Debian's Xen 4.17 and kernel packages into ${cacheDir}`);
    const debs = join(cacheDir, 'debs');
    rmSync(debs, { recursive: true, force: true });
    mkdirSync(debs, { recursive: true });
    const kernel = kernelPackage();
    execFileSync('apt-get', ['download', ...XEN_PACKAGES, kernel], { cwd: debs, stdio: ['ignore', 'ignore', 'pipe'] });
    const staging = `${root}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb'))) execFileSync('dpkg', ['-x', join(debs, deb), staging]);
    rmSync(root, { recursive: true, force: true });
    renameSync(staging, root);
    writeFileSync(join(cacheDir, 'root.complete'), `${new Date().toISOString()}\n`);
  }
  const boot = readdirSync(join(root, 'boot'));
  const xen = boot.find((f) => /^xen-4\.17-amd64\.gz$/.test(f));
  const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
  if (!xen || !vmlinuz) throw new Error(`${root}/boot lacks the hypervisor or the kernel; remove ${cacheDir} to fetch again`);
  return {
    root,
    xenGz: join(root, 'boot', xen),
    vmlinuz: join(root, 'boot', vmlinuz),
    kernelRelease: vmlinuz.slice('vmlinuz-'.length),
    verifyStream: join(root, 'usr/lib/xen-4.17/bin/verify-stream-v2'),
    pythonPath: join(root, 'usr/lib/xen-4.17/lib/python'),
  };
}

/** The versioned kernel image package that bookworm's linux-image-amd64 points at. */
function kernelPackage(): string {
  const out = execFileSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
  const name = /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(out)?.[1];
  if (!name) throw new Error('apt-cache cannot resolve linux-image-amd64 (run apt-get update first)');
  return name;
}
