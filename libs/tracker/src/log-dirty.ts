// Turning log-dirty mode on the way Xen's save code does (enable_logdirty in xg_sr_save.c): if it
// is already on (a previous migration died without turning it off), turn it OFF and ENABLE again,
// which also starts from an empty bitmap.

import { HypervisorError, type HypervisorDriver } from '@ferry/hypervisor';

export async function enableLogDirty(driver: HypervisorDriver, domid: number): Promise<void> {
  try {
    await driver.logDirtyEnable(domid);
  } catch (err) {
    if (!(err instanceof HypervisorError && err.code === 'EBUSY')) throw err;
    await driver.logDirtyDisable(domid);
    await driver.logDirtyEnable(domid);
  }
}
