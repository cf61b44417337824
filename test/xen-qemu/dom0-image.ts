// The dom0 initramfs of a nested Xen host: busybox, Debian's Xen 4.17 tools and libraries at the
// paths Debian installs them (libxl finds libxl-save-helper there), the outer machine's libc and
// friends, the kernel modules dom0 needs (loaded by path, in order), and dom0-init.sh as /init.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DebianRoot } from './debian-root';
import { InitramfsStage, isElf } from './initramfs';

/** Load order matters: each module's dependencies come before it. */
const DOM0_MODULES = [
  'drivers/xen/xen-evtchn',
  'drivers/xen/xen-privcmd',
  'drivers/xen/xenfs/xenfs',
  'drivers/xen/xen-gntdev',
  'drivers/xen/xen-gntalloc',
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci',
  'net/core/failover',
  'drivers/net/net_failover',
  'drivers/net/virtio_net',
  'fs/netfs/netfs',
  'fs/fscache/fscache',
  'net/9p/9pnet',
  'net/9p/9pnet_virtio',
  'fs/9p/9p',
];

export function buildDom0Image(debian: DebianRoot, stageDir: string, out: string): string {
  const stage = new InitramfsStage(stageDir);
  stage.installBusybox();
  const { root } = debian;
  const debianLibs = join(root, 'usr/lib/x86_64-linux-gnu');
  stage.copyTree(join(root, 'usr/lib/xen-4.17'), 'usr/lib/xen-4.17');
  stage.copyTree(debianLibs, 'usr/lib/x86_64-linux-gnu');
  stage.copyTree(join(root, 'etc/xen'), 'etc/xen');
  const xenstoreTools = readdirSync(join(root, 'usr/bin')).filter((f) => f.startsWith('xenstore'));
  for (const tool of xenstoreTools) stage.copy(join(root, 'usr/bin', tool), `usr/bin/${tool}`, 0o755);

  const xenBin = join(root, 'usr/lib/xen-4.17/bin');
  const elves = [
    ...readdirSync(xenBin).map((f) => join(xenBin, f)),
    ...xenstoreTools.map((f) => join(root, 'usr/bin', f)),
  ].filter(isElf);
  stage.installLibraries(elves, [debianLibs, join(root, 'usr/lib/xen-4.17/lib/x86_64-linux-gnu')]);

  const modulesDir = join(root, 'lib/modules', debian.kernelRelease, 'kernel');
  const inImage = DOM0_MODULES.map((m) => `/lib/modules/ferry/${m.slice(m.lastIndexOf('/') + 1)}.ko`);
  DOM0_MODULES.forEach((m, i) => stage.copy(join(modulesDir, `${m}.ko`), inImage[i].slice(1)));
  stage.write('etc/ferry/modules', `${inImage.join('\n')}\n`);

  stage.write('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  stage.write('etc/group', 'root:x:0:\n');
  stage.write('etc/nsswitch.conf', 'hosts: files dns\n');
  stage.write('etc/hosts', '127.0.0.1 localhost\n');
  // The receiving end of `xl migrate`: nc -e runs it with the connection as stdin and stdout.
  stage.write('etc/ferry/xl-receive', '#!/bin/sh\nexec /usr/lib/xen-4.17/bin/xl -vvv migrate-receive 2>>/work/xl-migrate-receive.log\n', 0o755);
  stage.copy(join(__dirname, 'dom0-init.sh'), 'init', 0o755);
  return stage.pack(out);
}
