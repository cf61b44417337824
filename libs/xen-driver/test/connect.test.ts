// Opening the xen driver: FERRY_DRIVER=xen through @ferry/hypervisor, and connectXenDriver's
// errors outside a dom0 and without the addon. XenDriver implements the whole driver interface.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connectDriverFromEnv, HypervisorError, type HypervisorDriver } from '@ferry/hypervisor';
import { buildStatus, connectXenDriver, PRIVCMD_PATH, XenDriver, XenDriverNotBuiltError } from '@ferry/xen-driver';

const isDom0 = existsSync(PRIVCMD_PATH) ? `${PRIVCMD_PATH} exists: this host is a Xen dom0` : false;
const status = buildStatus();
const scratch = mkdtempSync(join(tmpdir(), 'ferry-xen-connect-'));
/** A stand-in file for the privcmd device, so the checks after it are reached on a non-Xen host. */
const fakePrivcmd = join(scratch, 'privcmd');
writeFileSync(fakePrivcmd, '');
after(() => rmSync(scratch, { recursive: true, force: true }));

test('FERRY_DRIVER=xen outside a dom0 fails with "not a Xen dom0"', { skip: isDom0 }, async () => {
  await assert.rejects(connectDriverFromEnv({ FERRY_DRIVER: 'xen' }), {
    message: 'FERRY_DRIVER=xen: not a Xen dom0: /dev/xen/privcmd not found',
  });
});

test('an unknown FERRY_DRIVER is still refused', async () => {
  await assert.rejects(connectDriverFromEnv({ FERRY_DRIVER: 'kvm' }), /FERRY_DRIVER must be "emulated" or "xen", got "kvm"/);
});

test('FERRY_DRIVER=xen with the addon missing says it is not built', async () => {
  await assert.rejects(
    connectXenDriver({ privcmdPath: fakePrivcmd, addonPath: join(scratch, 'missing.node') }),
    (e: unknown) => e instanceof XenDriverNotBuiltError && /the native Xen driver is not built/.test(e.message),
  );
  // The same through the environment, with the FERRY_DRIVER=xen prefix.
  await assert.rejects(
    connectDriverFromEnv({ FERRY_DRIVER: 'xen', FERRY_XEN_ADDON: join(scratch, 'missing.node') }),
    isDom0 ? /FERRY_DRIVER=xen: the native Xen driver is not built/ : /FERRY_DRIVER=xen: not a Xen dom0/,
  );
});

test('the built addon outside a dom0: the open fails as a HypervisorError, the process carries on', { skip: !status.built ? 'the addon is not built' : isDom0 }, async () => {
  await assert.rejects(
    connectXenDriver({ privcmdPath: fakePrivcmd }),
    (e: unknown) => e instanceof HypervisorError && e.code === 'EIO' && /xc_interface_open .*\/dev\/xen\/privcmd.*ENOENT/.test(e.message),
  );
});

test('XenDriver has every method of the driver interface', () => {
  // A Record over keyof HypervisorDriver: adding a method to the interface breaks this until listed.
  const methods: Record<Exclude<keyof HypervisorDriver, 'kind'>, true> = {
    hostInfo: true,
    listDomains: true,
    domainInfo: true,
    createDomain: true,
    createRestoreDomain: true,
    destroy: true,
    pause: true,
    unpause: true,
    suspend: true,
    suspendProblem: true,
    toolstackConfig: true,
    resumeSuspended: true,
    logDirtyEnable: true,
    logDirtyDisable: true,
    logDirtyClean: true,
    logDirtyPeek: true,
    p2m: true,
    mapForeignPages: true,
    writePages: true,
    getVcpuContext: true,
    setVcpuContext: true,
    xenstoreRead: true,
    xenstoreWrite: true,
    xenstoreWatch: true,
    close: true,
  };
  for (const name of Object.keys(methods)) {
    assert.equal(typeof (XenDriver.prototype as unknown as Record<string, unknown>)[name], 'function', name);
  }
});
