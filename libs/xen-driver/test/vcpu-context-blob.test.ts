// The vCPU context blob: Xen-framed records (libxc stream v3 layout) that round-trip and that a
// writer of Xen's stream can copy as records.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HypervisorError } from '@ferry/hypervisor';
import {
  contextRecords,
  ContextRecord,
  CONTEXT_MAGIC,
  packVcpuContext,
  unpackVcpuContext,
  type XenVcpuContext,
} from '@ferry/xen-driver';

const sample = (): XenVcpuContext => ({
  domain: { guestType: 'pvh', vcpus: 2, p2mSize: 0xff000, xenMajor: 4, xenMinor: 17 },
  tsc: { mode: 0, khz: 2_400_000, elapsedNsec: 123_456_789_012n, incarnation: 3 },
  hvmParams: [
    { index: 1, value: 0xfeffcn }, // STORE_PFN
    { index: 17, value: 0xfefffn }, // CONSOLE_PFN
    { index: 38, value: 0xffff_ffff_ffff_ffffn },
  ],
  hvmContext: Uint8Array.from({ length: 1021 }, (_, i) => (i * 7) & 0xff), // an odd length: padding
  cpuidPolicy: Uint8Array.from({ length: 24 * 3 }, (_, i) => i & 0xff),
  msrPolicy: Uint8Array.from({ length: 16 * 2 }, (_, i) => 255 - i),
});

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

describe('vCPU context blob', () => {
  it('round-trips every part', () => {
    const c = sample();
    assert.deepEqual(unpackVcpuContext(packVcpuContext(c)), c);
  });

  it('is framed like Xen\'s stream: header, 8-byte record headers, bodies padded to 8', () => {
    const blob = packVcpuContext(sample());
    assert.equal(Buffer.from(blob.subarray(0, 8)).toString('latin1'), CONTEXT_MAGIC);
    assert.equal(view(blob).getUint32(8, true), 1, 'version');
    assert.equal(blob.length % 8, 0);
    const records = contextRecords(blob);
    assert.equal(view(blob).getUint32(12, true), records.length);
    assert.deepEqual(
      records.map((r) => r.type),
      [ContextRecord.FERRY_DOMAIN, ContextRecord.X86_CPUID_POLICY, ContextRecord.X86_MSR_POLICY, ContextRecord.X86_TSC_INFO, ContextRecord.HVM_CONTEXT, ContextRecord.HVM_PARAMS],
      "Xen's saver order",
    );
    assert.equal(records.find((r) => r.type === ContextRecord.HVM_CONTEXT)!.body.length, 1021);
  });

  it('writes X86_TSC_INFO and HVM_PARAMS bodies in Xen\'s layouts', () => {
    const records = contextRecords(packVcpuContext(sample()));
    const tsc = view(records.find((r) => r.type === ContextRecord.X86_TSC_INFO)!.body);
    assert.equal(tsc.byteLength, 24);
    assert.equal(tsc.getUint32(0, true), 0, 'mode');
    assert.equal(tsc.getUint32(4, true), 2_400_000, 'khz');
    assert.equal(tsc.getBigUint64(8, true), 123_456_789_012n, 'nsec');
    assert.equal(tsc.getUint32(16, true), 3, 'incarnation');
    assert.equal(tsc.getUint32(20, true), 0, 'reserved');
    const params = view(records.find((r) => r.type === ContextRecord.HVM_PARAMS)!.body);
    assert.equal(params.byteLength, 8 + 3 * 16);
    assert.equal(params.getUint32(0, true), 3, 'count');
    assert.equal(params.getBigUint64(8, true), 1n, 'index 0');
    assert.equal(params.getBigUint64(16, true), 0xfeffcn, 'value 0');
  });

  it('leaves out HVM_PARAMS when no param is set, as Xen does', () => {
    const c = { ...sample(), hvmParams: [] };
    const blob = packVcpuContext(c);
    assert.equal(contextRecords(blob).some((r) => r.type === ContextRecord.HVM_PARAMS), false);
    assert.deepEqual(unpackVcpuContext(blob).hvmParams, []);
  });

  it('skips unknown optional records and refuses unknown mandatory ones', () => {
    const blob = packVcpuContext(sample());
    const withExtra = (type: number) => {
      const extra = new Uint8Array(16);
      view(extra).setUint32(0, type, true);
      view(extra).setUint32(4, 3, true);
      const out = new Uint8Array(blob.length + 16);
      out.set(blob);
      out.set(extra, blob.length);
      view(out).setUint32(12, view(blob).getUint32(12, true) + 1, true);
      return out;
    };
    assert.deepEqual(unpackVcpuContext(withExtra(0x80000077)), sample());
    assert.throws(() => unpackVcpuContext(withExtra(0x77)), /unknown mandatory record type 0x77/);
  });

  it('refuses what is not a whole blob with EINVAL and a reason', () => {
    const blob = packVcpuContext(sample());
    const expectEinval = (b: Uint8Array, pattern: RegExp) =>
      assert.throws(() => unpackVcpuContext(b), (e: unknown) => e instanceof HypervisorError && e.code === 'EINVAL' && pattern.test(e.message));
    expectEinval(new Uint8Array(40), /FERRYXEN header/);
    expectEinval(blob.subarray(0, blob.length - 8), /past the end|missing/);
    const v2 = new Uint8Array(blob);
    view(v2).setUint32(8, 2, true);
    expectEinval(v2, /version 2/);
    const trailing = new Uint8Array(blob.length + 8);
    trailing.set(blob);
    expectEinval(trailing, /follow the last record/);
    const noContext = contextRecords(blob).filter((r) => r.type !== ContextRecord.HVM_CONTEXT).length;
    const fewer = new Uint8Array(blob);
    view(fewer).setUint32(12, noContext, true); // drops the last record (HVM_PARAMS) → trailing bytes
    expectEinval(fewer, /follow the last record/);
  });

  it('refuses CPU policies that are not whole entries', () => {
    assert.throws(() => packVcpuContext({ ...sample(), cpuidPolicy: new Uint8Array(25) }), /xen_cpuid_leaf_t/);
  });
});
