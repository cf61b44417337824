// A driver's vCPU context turned into the records of an exported stream: the xen driver's
// "FERRYXEN" blob (built here from its documented layout: a 16-byte header, then Xen's record
// framing), a bare HVM save image, and the emulated driver's opaque state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { streamStateOf } from '@ferry/streaming';
import { encodeHvmParams, encodeRecord, encodeTscInfo, LibxcRecordType, minimalHvmContext } from '@ferry/xen-stream';

function xenDriverBlob(records: Buffer[]): Buffer {
  const header = Buffer.alloc(16);
  header.write('FERRYXEN', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(records.length, 12);
  return Buffer.concat([header, ...records]);
}

function ferryDomain(guestType: 1 | 2): Buffer {
  const body = Buffer.alloc(24);
  body.writeUInt32LE(guestType, 0);
  body.writeUInt32LE(2, 4);
  body.writeBigUInt64LE(32768n, 8);
  body.writeUInt32LE(4, 16);
  body.writeUInt32LE(17, 20);
  return encodeRecord(0x8000_0001, body);
}

const tsc = { mode: 0, khz: 2_000_000, nsec: 5n, incarnation: 1 };
const params = [{ index: 1n, value: 0xfeffcn }, { index: 17n, value: 0xfefffn }];
const cpuid = Buffer.alloc(48, 1);
const msr = Buffer.alloc(16, 2);

describe('streamStateOf', () => {
  it('the xen driver\'s blob: every Xen record as it is, the guest type from FERRY_DOMAIN, unknown optional records skipped', () => {
    const hvm = minimalHvmContext({ cpuid: 0x806ec });
    const state = streamStateOf(
      xenDriverBlob([
        ferryDomain(2),
        encodeRecord(LibxcRecordType.X86_CPUID_POLICY, cpuid),
        encodeRecord(LibxcRecordType.X86_MSR_POLICY, msr),
        encodeRecord(LibxcRecordType.X86_TSC_INFO, encodeTscInfo(tsc)),
        encodeRecord(LibxcRecordType.HVM_CONTEXT, hvm),
        encodeRecord(LibxcRecordType.HVM_PARAMS, encodeHvmParams(params)),
        encodeRecord(0x8000_0077, Buffer.from('later')),
      ]),
    );
    assert.equal(state.guestType, 'pvh');
    assert.deepEqual(Buffer.from(state.finalState.hvmContext), hvm);
    assert.deepEqual(state.finalState.tsc, tsc);
    assert.deepEqual(state.finalState.hvmParams, params);
    assert.deepEqual(Buffer.from(state.cpuPolicy!.cpuid!), cpuid);
    assert.deepEqual(Buffer.from(state.cpuPolicy!.msr!), msr);
    assert.equal(state.opaqueContext, undefined, 'nothing needs the config\'s ferry section');
  });

  it('an HVM guest is reported as such; a blob without HVM_CONTEXT or with an unknown mandatory record is refused', () => {
    assert.equal(streamStateOf(xenDriverBlob([ferryDomain(1), encodeRecord(LibxcRecordType.HVM_CONTEXT, minimalHvmContext())])).guestType, 'hvm');
    assert.throws(() => streamStateOf(xenDriverBlob([ferryDomain(2)])), /no HVM_CONTEXT/);
    assert.throws(() => streamStateOf(xenDriverBlob([encodeRecord(0x13, Buffer.alloc(8)), encodeRecord(LibxcRecordType.HVM_CONTEXT, minimalHvmContext())])), /unknown mandatory record type 0x13/);
  });

  it('a bare HVM save image is HVM_CONTEXT; any other context is opaque and rides in the config', () => {
    const image = minimalHvmContext();
    assert.deepEqual(Buffer.from(streamStateOf(image).finalState.hvmContext), image);
    const emulated = new Uint8Array(128).fill(3);
    const state = streamStateOf(emulated);
    assert.equal(state.opaqueContext, emulated);
    assert.equal(state.finalState.hvmContext.byteLength, 40, 'a minimal HVM save image');
  });
});
