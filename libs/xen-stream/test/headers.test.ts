// The fixed headers, byte for byte as Xen 4.17 writes them, and what their decoders refuse.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeLibxcDomainHeader,
  decodeLibxcImageHeader,
  decodeLibxlHeader,
  decodeXlFixedHeader,
  decodeXlOptionalData,
  encodeLibxcDomainHeader,
  encodeLibxcImageHeader,
  encodeLibxlHeader,
  encodeXlHeader,
  MalformedStream,
  XL_HEADER_BYTES,
} from '@ferry/xen-stream';

const hex = (b: Buffer) => b.toString('hex');

describe('xl save-file header', () => {
  test('exact bytes: magic, byte order, flags JSON|STREAMv2, optional data = length + config + NUL', () => {
    const config = '{"c_info":{}}';
    const b = encodeXlHeader(config);
    assert.equal(b.subarray(0, 32).toString('latin1'), 'Xen saved domain, xl format\n \0 \r');
    assert.equal(hex(b.subarray(32, 36)), '04030201', 'byteorder 0x01020304, little-endian');
    assert.equal(b.readUInt32LE(36), 3, 'mandatory flags: JSON (1) | STREAMv2 (2)');
    assert.equal(b.readUInt32LE(40), 0, 'no optional flags');
    assert.equal(b.readUInt32LE(44), 4 + config.length + 1, 'optional data: u32 length, config, NUL');
    assert.equal(b.readUInt32LE(48), config.length + 1, 'config length counts the trailing NUL (strlen + 1, as xl writes it)');
    assert.equal(b.subarray(52, 52 + config.length).toString(), config);
    assert.equal(b[52 + config.length], 0);
    assert.equal(b.length, XL_HEADER_BYTES + 4 + config.length + 1);
  });

  test('without a config: STREAMv2 only, four zero bytes of optional data', () => {
    const b = encodeXlHeader(null);
    assert.equal(b.readUInt32LE(36), 2);
    assert.equal(b.readUInt32LE(44), 4);
    assert.equal(hex(b.subarray(48)), '00000000');
    const fixed = decodeXlFixedHeader(b);
    assert.equal(decodeXlOptionalData(fixed, b.subarray(XL_HEADER_BYTES)).config, null);
  });

  test('round trip', () => {
    const config = JSON.stringify({ c_info: { name: 'vm-ü' } });
    const b = encodeXlHeader(config);
    const fixed = decodeXlFixedHeader(b);
    assert.deepEqual(fixed, { mandatoryFlags: 3, optionalFlags: 0, optionalDataLength: b.length - XL_HEADER_BYTES });
    assert.equal(decodeXlOptionalData(fixed, b.subarray(XL_HEADER_BYTES)).config, config);
  });

  test('refuses what xl restore refuses: bad magic, big-endian, unknown mandatory flags, legacy streams, oversized config length', () => {
    const good = encodeXlHeader('{}');
    const variant = (at: number, value: number) => {
      const b = Buffer.from(good);
      b.writeUInt32LE(value, at);
      return b;
    };
    const badMagic = Buffer.from(good);
    badMagic[0] = 0x59;
    assert.throws(() => decodeXlFixedHeader(badMagic), MalformedStream);
    assert.throws(() => decodeXlFixedHeader(variant(32, 0x04030201)), /byte order/);
    assert.throws(() => decodeXlFixedHeader(variant(36, 3 | 4)), /unknown mandatory flags/);
    assert.throws(() => decodeXlFixedHeader(variant(36, 1)), /legacy/);
    const fixed = decodeXlFixedHeader(good);
    const optional = Buffer.from(good.subarray(XL_HEADER_BYTES));
    optional.writeUInt32LE(1000, 0);
    assert.throws(() => decodeXlOptionalData(fixed, optional), /does not fit/);
  });
});

describe('libxl stream header', () => {
  test('exact bytes: "LibxlFmt", version 2, options 0 (little-endian records), big-endian fields', () => {
    assert.equal(hex(encodeLibxlHeader()), hex(Buffer.from('LibxlFmt', 'latin1')) + '00000002' + '00000000');
    assert.deepEqual(decodeLibxlHeader(encodeLibxlHeader()), { version: 2, options: 0 });
  });

  test('refuses a bad ident, another version, reserved or big-endian options', () => {
    const b = encodeLibxlHeader();
    const set = (at: number, v: number) => {
      const c = Buffer.from(b);
      c.writeUInt32BE(v, at);
      return c;
    };
    assert.throws(() => decodeLibxlHeader(Buffer.alloc(16)), /ident/);
    assert.throws(() => decodeLibxlHeader(set(8, 3)), /version 3/);
    assert.throws(() => decodeLibxlHeader(set(12, 4)), /reserved bits/);
    assert.throws(() => decodeLibxlHeader(set(12, 1)), /big-endian/);
  });
});

describe('libxc stream headers', () => {
  test('image header: marker of 0xFF, "XENF", version 3, options 0, reserved 0 (big-endian)', () => {
    assert.equal(hex(encodeLibxcImageHeader()), 'ffffffffffffffff' + '58454e46' + '00000003' + '0000' + '0000' + '00000000');
    assert.deepEqual(decodeLibxcImageHeader(encodeLibxcImageHeader()), { version: 3, options: 0 });
  });

  test('domain header: x86 HVM, page shift 12, Xen 4.17 (little-endian)', () => {
    const b = encodeLibxcDomainHeader({ type: 2, xenMajor: 4, xenMinor: 17 });
    assert.equal(hex(b), '02000000' + '0c00' + '0000' + '04000000' + '11000000');
    assert.deepEqual(decodeLibxcDomainHeader(b), { type: 2, pageShift: 12, xenMajor: 4, xenMinor: 17 });
  });

  test('refuses legacy images, other ids and versions, reserved bits, unknown domain types and page shifts', () => {
    const image = encodeLibxcImageHeader();
    const imageWith = (at: number, v: number, size: 2 | 4) => {
      const c = Buffer.from(image);
      if (size === 4) c.writeUInt32BE(v, at);
      else c.writeUInt16BE(v, at);
      return c;
    };
    const legacy = Buffer.from(image);
    legacy[3] = 0x7f;
    assert.throws(() => decodeLibxcImageHeader(legacy), /legacy/);
    assert.throws(() => decodeLibxcImageHeader(imageWith(8, 0x58454e47, 4)), /id/);
    assert.throws(() => decodeLibxcImageHeader(imageWith(12, 4, 4)), /version 4/);
    assert.throws(() => decodeLibxcImageHeader(imageWith(16, 2, 2)), /reserved bits/);
    assert.throws(() => decodeLibxcImageHeader(imageWith(20, 1, 4)), /reserved fields/);
    assert.throws(() => decodeLibxcDomainHeader(encodeLibxcDomainHeader({ type: 3, xenMajor: 4, xenMinor: 17 })), /domain type 3/);
    const shift = encodeLibxcDomainHeader({ type: 2, xenMajor: 4, xenMinor: 17 });
    shift.writeUInt16LE(16, 4);
    assert.throws(() => decodeLibxcDomainHeader(shift), /page shift 16/);
  });
});
