// The data plane's wire pieces: the hand-written PageBatchHeader codec against the generated one,
// the send-set cursor, and the token bucket's accounting on a fake clock.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bitmapSet } from '@ferry/hypervisor';
import { ChecksumAlgorithm, PageBatchFlag, PageBatchHeader, PageEncoding, PayloadCompression } from '@ferry/proto';
import {
  computeChecksum,
  decodeBatchHeader,
  encodeBatchHeaderFrame,
  MalformedHeader,
  SendSetCursor,
  TokenBucket,
  type BatchHeader,
  type BucketClock,
} from '@ferry/streaming';

function sampleHeader(): BatchHeader {
  return {
    migrationId: 'mig-ü-1',
    round: 3,
    sequence: 12,
    pfnCount: 4,
    flags: PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND,
    pfns: [0, 127, 128, 2 ** 40],
    encodings: Uint8Array.from([PageEncoding.PAGE_ENCODING_RAW, PageEncoding.PAGE_ENCODING_ZERO, PageEncoding.PAGE_ENCODING_ABSENT, PageEncoding.PAGE_ENCODING_RAW]),
    compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
    payloadLength: 8192,
    checksumAlgorithm: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
    checksum: computeChecksum(ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32, Buffer.from('payload')),
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  };
}

describe('batch header codec', () => {
  it('writes exactly the bytes of the generated encoder, length-prefixed', () => {
    const h = sampleHeader();
    const frame = encodeBatchHeaderFrame(h);
    const generated = PageBatchHeader.encode({
      migrationId: h.migrationId,
      round: h.round,
      sequence: BigInt(h.sequence),
      pfnCount: h.pfnCount,
      flags: h.flags,
      pfns: h.pfns.map(BigInt),
      encodings: [...h.encodings!],
      compression: h.compression,
      payloadLength: h.payloadLength,
      checksumAlgorithm: h.checksumAlgorithm,
      checksum: Buffer.from(h.checksum),
      traceparent: h.traceparent!,
    }).finish();
    assert.equal(frame.readUInt32BE(0), generated.length);
    assert.deepEqual(frame.subarray(4), Buffer.from(generated));
  });

  it('decodes what the generated encoder writes, and omits empty encodings', () => {
    const bytes = Buffer.from(
      PageBatchHeader.encode({
        migrationId: 'm',
        round: 0,
        sequence: 1n,
        pfnCount: 2,
        flags: 0,
        pfns: [5n, 6n],
        encodings: [],
        compression: 0,
        payloadLength: 8192,
        checksumAlgorithm: 0,
        checksum: Buffer.alloc(0),
        traceparent: '',
      }).finish(),
    );
    const h = decodeBatchHeader(bytes, 0, bytes.length);
    assert.deepEqual(h.pfns, [5, 6]);
    assert.equal(h.encodings, null);
    assert.equal(h.sequence, 1);
    assert.equal(h.payloadLength, 8192);
    assert.equal(h.round, 0);
  });

  it('round-trips its own frames, and accepts unpacked pfns and unknown fields', () => {
    const h = sampleHeader();
    const frame = encodeBatchHeaderFrame(h);
    const back = decodeBatchHeader(frame, 4, frame.length);
    assert.deepEqual({ ...back, checksum: Buffer.from(back.checksum) }, { ...h, checksum: Buffer.from(h.checksum) });

    // Field 6 unpacked (tag 0x30) twice, then an unknown field 99 (varint), then round.
    const raw = Buffer.from([0x30, 0x07, 0x30, 0x08, 0x98, 0x06, 0x01, 0x10, 0x02]);
    const d = decodeBatchHeader(raw, 0, raw.length);
    assert.deepEqual(d.pfns, [7, 8]);
    assert.equal(d.round, 2);
  });

  it('refuses truncated or oversized input with MalformedHeader', () => {
    const frame = encodeBatchHeaderFrame(sampleHeader());
    assert.throws(() => decodeBatchHeader(frame, 4, frame.length - 3), MalformedHeader);
    assert.throws(() => decodeBatchHeader(Buffer.from([0x0a, 0x7f, 0x41]), 0, 3), MalformedHeader); // string overruns
    assert.throws(() => decodeBatchHeader(Buffer.from([0x0b]), 0, 1), MalformedHeader); // wire type 3 (group)
    const tooMany = Buffer.alloc(2 + 1025 * 2);
    for (let i = 0; i < 1025; i++) tooMany.set([0x30, 0x01], i * 2);
    assert.throws(() => decodeBatchHeader(tooMany, 0, 1025 * 2), /more than 1024 pfns/);
  });
});

describe('SendSetCursor', () => {
  it('walks set bits in batches and leaves out (and counts) skipped pages', () => {
    const set = new Uint8Array(4);
    for (const p of [0, 3, 9, 10, 11, 25, 31]) bitmapSet(set, p);
    const skip = new Uint8Array(4);
    bitmapSet(skip, 10);
    bitmapSet(skip, 25);
    const cursor = new SendSetCursor(set, 30);
    assert.deepEqual(cursor.next(3, null), [0, 3, 9]);
    assert.equal(cursor.done, false);
    assert.deepEqual(cursor.next(3, skip), [11]); // 10 and 25 skipped; 31 is beyond max_pages
    assert.equal(cursor.skipped, 2);
    assert.equal(cursor.done, true);
    assert.deepEqual(cursor.next(3, null), []);
  });
});

/** A clock that only moves when someone sleeps. */
function fakeClock(): BucketClock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.t += ms;
    },
  };
  return clock;
}

describe('TokenBucket', () => {
  it('grants the burst at once and then exactly the rate', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1_000_000, 100_000, clock); // 1 MB/s, 100 kB burst
    await bucket.take(100_000);
    assert.equal(clock.t, 0, 'the burst costs no time');
    await bucket.take(50_000);
    assert.equal(clock.t, 50, '50 kB more at 1 MB/s is 50 ms');
    for (let i = 0; i < 100; i++) await bucket.take(10_000);
    assert.equal(bucket.grantedBytes, 1_150_000);
    assert.ok(Math.abs(clock.t - 1050) < 1e-6, `${clock.t}`);
    assert.ok(bucket.grantedBytes <= bucket.allowance() + 1e-6, 'granted bytes never exceed burst + rate × time');
    assert.ok(Math.abs(bucket.throttledMs - 1050) < 1e-6);
  });

  it('refills while idle, but never above the burst', async () => {
    const clock = fakeClock();
    const bucket = TokenBucket.forBitsPerSecond(8_000_000, { clock, burstMs: 10, minBurstBytes: 1 }); // 1 MB/s, 10 kB burst
    assert.equal(bucket.burstBytes, 10_000);
    await bucket.take(10_000);
    clock.t += 5_000; // a long pause refills only the burst
    await bucket.take(20_000);
    assert.equal(clock.t, 5_010);
  });

  it('stops waiting when the signal aborts', async () => {
    const bucket = new TokenBucket(1000, 1000);
    const controller = new AbortController();
    const waiting = bucket.take(1_000_000, controller.signal);
    controller.abort(new Error('peer gone'));
    await assert.rejects(waiting, /peer gone/);
  });
});
