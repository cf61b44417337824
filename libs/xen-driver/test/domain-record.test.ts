// Xen's getdomaininfo record decoded into DomainInfo.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DomInfoFlag,
  domainState,
  guestType,
  isDying,
  ShutdownCode,
  shutdownReason,
  toDomainInfo,
  uuidFromHandle,
  vcpuCount,
  X86_EMU_LAPIC,
  type RawDomainRecord,
} from '@ferry/xen-driver';

const EMU_ALL_BUT_VPCI = 0x3ff; // what libxl gives an HVM guest (everything but vPCI)

const record = (over: Partial<RawDomainRecord> = {}): RawDomainRecord => ({
  domid: 7,
  flags: DomInfoFlag.HVM_GUEST | DomInfoFlag.HAP | DomInfoFlag.BLOCKED,
  totPages: 32768,
  maxPages: 33024,
  outstandingPages: 0,
  sharedPages: 0,
  pagedPages: 0,
  sharedInfoFrame: 0xfefff,
  cpuTimeNs: 123n,
  nrOnlineVcpus: 2,
  maxVcpuId: 1,
  cpupool: 0,
  gpaddrBits: 52,
  emulationFlags: X86_EMU_LAPIC,
  handle: Buffer.from('6a1b2c3d4e5f40718293a4b5c6d7e8f9', 'hex'),
  ...over,
});

const shutdownFlags = (code: number) => DomInfoFlag.HVM_GUEST | DomInfoFlag.SHUTDOWN | (code << 16);

describe('domain state and shutdown reason', () => {
  it('running covers both running and blocked vCPUs; paused and shutdown come from their flags', () => {
    assert.equal(domainState(DomInfoFlag.RUNNING), 'running');
    assert.equal(domainState(DomInfoFlag.BLOCKED), 'running');
    assert.equal(domainState(DomInfoFlag.PAUSED | DomInfoFlag.BLOCKED), 'paused');
    // A suspended domain is shut down, whatever else is set.
    assert.equal(domainState(DomInfoFlag.SHUTDOWN | DomInfoFlag.PAUSED | (ShutdownCode.SUSPEND << 16)), 'shutdown');
  });

  it('decodes SHUTDOWN_* from bits 16..23, only when shut down', () => {
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.POWEROFF)), 'poweroff');
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.REBOOT)), 'reboot');
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.SUSPEND)), 'suspend');
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.CRASH)), 'crash');
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.WATCHDOG)), 'watchdog');
    assert.equal(shutdownReason(shutdownFlags(ShutdownCode.SOFT_RESET)), 'reboot');
    assert.equal(shutdownReason(shutdownFlags(0x77)), 'crash', 'an unknown code');
    assert.equal(shutdownReason(DomInfoFlag.RUNNING | (ShutdownCode.SUSPEND << 16)), null, 'a code without the shutdown flag');
  });

  it('a dying domain is one being destroyed', () => {
    assert.equal(isDying(record({ flags: DomInfoFlag.DYING | DomInfoFlag.HVM_GUEST })), true);
    assert.equal(isDying(record()), false);
  });
});

describe('guest type', () => {
  it('PV without the HVM flag, PVH with only the LAPIC emulated, HVM otherwise', () => {
    assert.equal(guestType({ flags: DomInfoFlag.RUNNING, emulationFlags: 0 }), 'pv');
    assert.equal(guestType({ flags: DomInfoFlag.HVM_GUEST, emulationFlags: X86_EMU_LAPIC }), 'pvh');
    assert.equal(guestType({ flags: DomInfoFlag.HVM_GUEST, emulationFlags: 0 }), 'pvh');
    assert.equal(guestType({ flags: DomInfoFlag.HVM_GUEST, emulationFlags: EMU_ALL_BUT_VPCI }), 'hvm');
  });
});

describe('toDomainInfo', () => {
  it('combines the record with the name, the p2m size and the log-dirty marker', () => {
    assert.deepEqual(toDomainInfo(record(), { name: 'web-1', p2mSize: 0xff000, logDirty: true }), {
      domid: 7,
      name: 'web-1',
      uuid: '6a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9',
      state: 'running',
      shutdownReason: null,
      nrPages: 32768,
      maxPages: 0xff000,
      memoryPages: 33024,
      vcpus: 2,
      logDirty: true,
      guestType: 'pvh',
    });
  });

  it("reports Xen's maxmem as the memory the domain may use, apart from the p2m size", () => {
    // A 128 MiB PVH guest: a p2m up to the special pages near 4 GiB, 32 Ki pages of memory.
    const info = toDomainInfo(record({ maxPages: 33024 }), { name: 'g', p2mSize: 1_044_480, logDirty: false });
    assert.equal(info.maxPages, 1_044_480);
    assert.equal(info.memoryPages, 33024);
  });

  it('names a domain without a xenstore name after its domid', () => {
    assert.equal(toDomainInfo(record(), { name: null, p2mSize: 1, logDirty: false }).name, 'domain-7');
    assert.equal(toDomainInfo(record({ domid: 0, flags: 0 }), { name: null, p2mSize: 1, logDirty: false }).name, 'Domain-0');
  });

  it('formats the UUID and counts vCPUs from max_vcpu_id', () => {
    assert.equal(uuidFromHandle(new Uint8Array(16)), '00000000-0000-0000-0000-000000000000');
    assert.equal(vcpuCount(0), 1);
    assert.equal(vcpuCount(3), 4);
    assert.equal(vcpuCount(0xffffffff), 0, 'XEN_INVALID_MAX_VCPU_ID: no vCPU');
  });
});
