// The migrated domU's initramfs: a static busybox and guest-init.sh as /init. Its kernel is the
// same Debian kernel dom0 runs (it boots as a PVH guest).

import { join } from 'node:path';
import { InitramfsStage } from './initramfs';

export function buildGuestImage(stageDir: string, out: string): string {
  const stage = new InitramfsStage(stageDir);
  stage.installBusybox();
  stage.copy(join(__dirname, 'guest-init.sh'), 'init', 0o755);
  return stage.pack(out);
}

export interface GuestConfig {
  name: string;
  kernel: string;
  ramdisk: string;
  memoryMiB: number;
  checkedFiles: number;
  sleepUs: number;
  paging: 'hap' | 'shadow';
}

/**
 * The xl domain configuration of the guest (PVH: log-dirty needs HAP, or shadow paging, which
 * Debian's hypervisor is built without; see reference/xen-in-qemu.md).
 *
 * pti=on: the guest panicked later with it than without it in our runs under QEMU 7.2's TCG (see
 * guest-init.sh on that crash); Xen's own guests run with it on Intel anyway.
 */
export function guestXlConfig(g: GuestConfig): string {
  const extra = `console=hvc0 rdinit=/init quiet pti=on ferry.files=${g.checkedFiles} ferry.sleep_us=${g.sleepUs}`;
  return [
    `name = "${g.name}"`,
    'type = "pvh"',
    `kernel = "${g.kernel}"`,
    `ramdisk = "${g.ramdisk}"`,
    `extra = "${extra}"`,
    `memory = ${g.memoryMiB}`,
    'vcpus = 1',
    `hap = ${g.paging === 'hap' ? 1 : 0}`,
    'on_crash = "preserve"',
    '',
  ].join('\n');
}
