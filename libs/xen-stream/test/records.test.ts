// Record framing, PAGE_DATA (pfn entries, XTAB without payload), the x86 records, the HVM save
// image and the domain config: encoders and decoders agree, and the decoders refuse what Xen's
// verifier refuses.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkHvmSaveImage,
  decodeDomainConfig,
  decodeHvmParams,
  decodePageData,
  decodeRecordHeader,
  decodeTscInfo,
  encodeDomainConfig,
  encodeHvmParams,
  encodePageDataRecord,
  encodeRecord,
  encodeTscInfo,
  LibxcRecordType,
  MAX_PFN,
  MalformedStream,
  minimalHvmContext,
  PageType,
  StreamWriteError,
} from '@ferry/xen-stream';

const page = (fill: number) => Buffer.alloc(4096, fill);

describe('record framing', () => {
  test('header {type, length} little-endian, body, zero padding to 8 bytes', () => {
    const r = encodeRecord(0x0a, Buffer.from([1, 2, 3]));
    assert.equal(r.toString('hex'), '0a000000' + '03000000' + '010203' + '0000000000');
    assert.deepEqual(decodeRecordHeader(r), { type: 0x0a, length: 3 });
    assert.equal(encodeRecord(0).toString('hex'), '0000000000000000', 'END: a header with a zero length');
    assert.equal(encodeRecord(1, Buffer.alloc(8, 1), Buffer.alloc(1, 2)).length, 8 + 16, 'parts are concatenated, then padded');
  });
});

describe('PAGE_DATA', () => {
  test('pages with data and XTAB entries: count, pfn entries with the type in bits 63-60, data only for the pages that have some', () => {
    const record = encodePageDataRecord([
      { pfn: 5, data: page(0xaa) },
      { pfn: 6, data: null },
      { pfn: MAX_PFN, data: page(0xbb) },
    ]);
    assert.equal(record.readUInt32LE(0), LibxcRecordType.PAGE_DATA);
    assert.equal(record.readUInt32LE(4), 8 + 3 * 8 + 2 * 4096, 'the XTAB entry carries no payload');
    assert.equal(record.length, 8 + 8 + 3 * 8 + 2 * 4096);
    const body = record.subarray(8);
    assert.equal(body.readUInt32LE(0), 3);
    assert.equal(body.readUInt32LE(4), 0);
    assert.equal(body.readBigUInt64LE(8), 5n, 'NOTAB: type 0');
    assert.equal(body.readBigUInt64LE(16), (0xfn << 60n) | 6n, 'XTAB: type 0xF in the top nibble');
    assert.equal(body.readBigUInt64LE(24), (1n << 52n) - 1n, 'a 52-bit pfn');
    assert.equal(body[32], 0xaa);
    assert.equal(body[32 + 4096], 0xbb);

    const decoded = decodePageData(body);
    assert.deepEqual(decoded.map((p) => [p.pfn, p.type, p.data?.[0] ?? null]), [
      [5, PageType.NOTAB, 0xaa],
      [6, PageType.XTAB, null],
      [MAX_PFN, PageType.NOTAB, 0xbb],
    ]);
  });

  test('an XTAB-only record is all pfn entries', () => {
    const record = encodePageDataRecord([{ pfn: 1, data: null }, { pfn: 2, data: null }]);
    assert.equal(record.length, 8 + 8 + 16);
    assert.deepEqual(decodePageData(record.subarray(8)).map((p) => p.data), [null, null]);
  });

  test('page tables carry data, BROKEN and XALLOC do not', () => {
    const record = encodePageDataRecord([
      { pfn: 1, type: PageType.L1TAB_PINNED, data: page(1) },
      { pfn: 2, type: PageType.BROKEN, data: null },
      { pfn: 3, type: PageType.XALLOC, data: null },
    ]);
    assert.equal(record.readUInt32LE(4), 8 + 24 + 4096);
    assert.deepEqual(decodePageData(record.subarray(8)).map((p) => [p.type, p.data !== null]), [[0x9, true], [0xd, false], [0xe, false]]);
  });

  test('the writer refuses empty or oversized records, short pages, data on XTAB, pfns beyond 52 bits, unknown types', () => {
    assert.throws(() => encodePageDataRecord([]), StreamWriteError);
    assert.throws(() => encodePageDataRecord(Array.from({ length: 1025 }, (_, pfn) => ({ pfn, data: null }))), /at most 1024/);
    assert.throws(() => encodePageDataRecord([{ pfn: 1, data: Buffer.alloc(100) }]), /4096 bytes/);
    assert.throws(() => encodePageDataRecord([{ pfn: 1, type: PageType.XTAB, data: page(0) }]), /carries no data/);
    assert.throws(() => encodePageDataRecord([{ pfn: MAX_PFN + 1, data: null }]), /52 bits/);
    assert.throws(() => encodePageDataRecord([{ pfn: 1, type: 6, data: null }]), /unknown page type/);
  });

  test('the reader refuses what verify-stream-v2 refuses', () => {
    const good = encodePageDataRecord([{ pfn: 7, data: page(1) }]).subarray(8);
    const variant = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      edit(b);
      return b;
    };
    assert.throws(() => decodePageData(good.subarray(0, 8)), /more than 8/);
    assert.throws(() => decodePageData(variant((b) => b.writeUInt32LE(1, 4))), /reserved field/);
    assert.throws(() => decodePageData(variant((b) => b.writeUInt32LE(0x0010_0000, 12))), /reserved bits/);
    assert.throws(() => decodePageData(variant((b) => b.writeUInt32LE(0x6000_0000, 12))), /invalid page type 0x6/);
    assert.throws(() => decodePageData(Buffer.concat([good, Buffer.alloc(8)])), /beyond its pages/);
    assert.throws(() => decodePageData(good.subarray(0, good.length - 8)), MalformedStream);
    assert.throws(() => decodePageData(variant((b) => b.writeUInt32LE(2, 0))), MalformedStream);
  });
});

describe('x86 records', () => {
  test('X86_TSC_INFO round trip, 24 bytes', () => {
    const tsc = { mode: 1, khz: 2_400_000, nsec: 123_456_789_012n, incarnation: 3 };
    const b = encodeTscInfo(tsc);
    assert.equal(b.length, 24);
    assert.deepEqual(decodeTscInfo(b), tsc);
    assert.throws(() => decodeTscInfo(b.subarray(0, 20)), /24/);
  });

  test('HVM_PARAMS round trip; the length must match the count', () => {
    const params = [{ index: 1n, value: 0xfeffcn }, { index: 17n, value: 0xfefffn }];
    const b = encodeHvmParams(params);
    assert.equal(b.length, 8 + 32);
    assert.deepEqual(decodeHvmParams(b), params);
    assert.throws(() => decodeHvmParams(b.subarray(0, 24)), /should be 40 bytes/);
  });
});

describe('HVM save image', () => {
  test('the minimal image is HEADER (magic 0x54381286, version 1) then END, 40 bytes, and checks as well formed', () => {
    const b = minimalHvmContext();
    assert.equal(b.length, 40);
    assert.equal(b.toString('hex').slice(0, 32), '01000000' + '18000000' + '86123854' + '01000000');
    assert.deepEqual(checkHvmSaveImage(b), { ok: true, entries: [{ typecode: 1, instance: 0, length: 24 }, { typecode: 0, instance: 0, length: 0 }] });
  });

  test('anything else is recognised as not an HVM save image', () => {
    assert.equal(checkHvmSaveImage(Buffer.alloc(128, 7)).ok, false);
    assert.equal(checkHvmSaveImage(minimalHvmContext().subarray(0, 32)).ok, false, 'no END');
    const badMagic = minimalHvmContext();
    badMagic.writeUInt32LE(1, 8);
    assert.equal(checkHvmSaveImage(badMagic).ok, false);
  });
});

describe('domain config (libxl JSON)', () => {
  test('a PVH config with libxl field names, and Ferry\'s section, round trip', () => {
    const config = {
      name: 'kv-1',
      uuid: '4c1e2b3a-0000-4000-8000-000000000001',
      vcpus: 2,
      maxMemKiB: 262144,
      targetMemKiB: 131072,
      ferry: { driver: 'emulated' as const, maxPages: 65536, vcpuContext: new Uint8Array([1, 2, 3, 250]), writer: 'test' },
    };
    const text = encodeDomainConfig(config);
    const json = JSON.parse(text);
    assert.equal(json.c_info.type, 'pvh');
    assert.equal(json.c_info.name, 'kv-1');
    assert.deepEqual(json.b_info.avail_vcpus, [0, 1], 'libxl writes a bitmap as the list of set bits');
    assert.equal(json.b_info.max_memkb, 262144);
    assert.equal(json.b_info.target_memkb, 131072);
    assert.ok('type.pvh' in json.b_info, 'the keyed union member as libxl names it');
    assert.equal(json.ferry.vcpu_context, Buffer.from([1, 2, 3, 250]).toString('base64'));
    assert.deepEqual(decodeDomainConfig(text), config);
  });

  test('a config without a Ferry section (as xl writes it) decodes too', () => {
    const text = JSON.stringify({ c_info: { type: 'pvh', name: 'd1', uuid: 'u' }, b_info: { max_vcpus: 1, max_memkb: 131072, target_memkb: 131072 } });
    assert.deepEqual(decodeDomainConfig(text), { name: 'd1', uuid: 'u', vcpus: 1, maxMemKiB: 131072, targetMemKiB: 131072 });
    assert.throws(() => decodeDomainConfig('{"c_info": 1}'), /c_info is not a JSON object/);
    assert.throws(() => decodeDomainConfig('not json'), /not JSON/);
  });
});
