// PageBatchHeader on the hot path. The generated codec turns every pfn into a bigint; this one
// reads and writes the same protobuf bytes (fields in number order, packed repeated fields, zero
// values omitted) with plain numbers and typed arrays, one allocation per batch, none per page.
// Decoding also accepts unpacked repeated fields and skips unknown fields, as protobuf requires.

import { MAX_BATCH_PAGES } from '@ferry/hypervisor';
import { LENGTH_PREFIX_BYTES } from './frames';

export interface BatchHeader {
  migrationId: string;
  round: number;
  sequence: number;
  pfnCount: number;
  /** Bitwise OR of PageBatchFlag values. */
  flags: number;
  pfns: number[];
  /** One PageEncoding per pfn, or null when every page is RAW (the field is then empty). */
  encodings: Uint8Array | null;
  /** PayloadCompression. */
  compression: number;
  payloadLength: number;
  /** ChecksumAlgorithm. */
  checksumAlgorithm: number;
  checksum: Uint8Array;
  /** The sender's W3C traceparent, on the first batch of a round and on the state ('' when absent). */
  traceparent?: string;
}

export class MalformedHeader extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedHeader';
  }
}

// Field tags: (field number << 3) | wire type.
const TAG = {
  migrationId: (1 << 3) | 2,
  round: (2 << 3) | 0,
  sequence: (3 << 3) | 0,
  pfnCount: (4 << 3) | 0,
  flags: (5 << 3) | 0,
  pfnsPacked: (6 << 3) | 2,
  pfn: (6 << 3) | 0,
  encodingsPacked: (7 << 3) | 2,
  encoding: (7 << 3) | 0,
  compression: (8 << 3) | 0,
  payloadLength: (9 << 3) | 0,
  checksumAlgorithm: (10 << 3) | 0,
  checksum: (11 << 3) | 2,
  traceparent: (12 << 3) | 2,
} as const;

const TWO_POW_32 = 2 ** 32;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** The header as a length-prefixed frame, ready for the wire. */
export function encodeBatchHeaderFrame(h: BatchHeader): Buffer {
  const idBytes = Buffer.byteLength(h.migrationId, 'utf8');
  let pfnBytes = 0;
  for (let i = 0; i < h.pfnCount; i++) pfnBytes += varintSize(h.pfns[i]);
  const encodingBytes = h.encodings ? h.pfnCount : 0; // every PageEncoding value fits one byte
  let size = 0;
  if (idBytes > 0) size += 1 + varintSize(idBytes) + idBytes;
  if (h.round !== 0) size += 1 + varintSize(h.round);
  if (h.sequence !== 0) size += 1 + varintSize(h.sequence);
  if (h.pfnCount !== 0) size += 1 + varintSize(h.pfnCount);
  if (h.flags !== 0) size += 1 + varintSize(h.flags);
  if (pfnBytes > 0) size += 1 + varintSize(pfnBytes) + pfnBytes;
  if (encodingBytes > 0) size += 1 + varintSize(encodingBytes) + encodingBytes;
  if (h.compression !== 0) size += 1 + varintSize(h.compression);
  if (h.payloadLength !== 0) size += 1 + varintSize(h.payloadLength);
  if (h.checksumAlgorithm !== 0) size += 1 + varintSize(h.checksumAlgorithm);
  if (h.checksum.length > 0) size += 1 + varintSize(h.checksum.length) + h.checksum.length;
  const traceBytes = h.traceparent ? Buffer.byteLength(h.traceparent, 'utf8') : 0;
  if (traceBytes > 0) size += 1 + varintSize(traceBytes) + traceBytes;

  const buf = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + size);
  buf.writeUInt32BE(size, 0);
  let pos = LENGTH_PREFIX_BYTES;
  if (idBytes > 0) {
    buf[pos++] = TAG.migrationId;
    pos = writeVarint(buf, pos, idBytes);
    pos += buf.write(h.migrationId, pos, 'utf8');
  }
  const scalar = (tag: number, value: number) => {
    if (value === 0) return;
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, value);
  };
  scalar(TAG.round, h.round);
  scalar(TAG.sequence, h.sequence);
  scalar(TAG.pfnCount, h.pfnCount);
  scalar(TAG.flags, h.flags);
  if (pfnBytes > 0) {
    buf[pos++] = TAG.pfnsPacked;
    pos = writeVarint(buf, pos, pfnBytes);
    for (let i = 0; i < h.pfnCount; i++) pos = writeVarint(buf, pos, h.pfns[i]);
  }
  if (h.encodings && encodingBytes > 0) {
    buf[pos++] = TAG.encodingsPacked;
    pos = writeVarint(buf, pos, encodingBytes);
    buf.set(h.encodings.subarray(0, h.pfnCount), pos);
    pos += encodingBytes;
  }
  scalar(TAG.compression, h.compression);
  scalar(TAG.payloadLength, h.payloadLength);
  scalar(TAG.checksumAlgorithm, h.checksumAlgorithm);
  if (h.checksum.length > 0) {
    buf[pos++] = TAG.checksum;
    pos = writeVarint(buf, pos, h.checksum.length);
    buf.set(h.checksum, pos);
    pos += h.checksum.length;
  }
  if (traceBytes > 0) {
    buf[pos++] = TAG.traceparent;
    pos = writeVarint(buf, pos, traceBytes);
    pos += buf.write(h.traceparent!, pos, 'utf8');
  }
  if (pos !== buf.length) throw new Error(`batch header encoder wrote ${pos} of ${buf.length} bytes`);
  return buf;
}

/** A cursor over the header bytes; every read checks the bounds. */
class Reader {
  constructor(
    private readonly buf: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a number; values above 2^53 are refused (no pfn, length or count gets there). */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new MalformedHeader('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new MalformedHeader('varint exceeds 2^53');
        return result;
      }
      scale *= 128;
    }
    throw new MalformedHeader('varint longer than 10 bytes');
  }

  uint32(field: string): number {
    const v = this.varint();
    if (v >= TWO_POW_32) throw new MalformedHeader(`${field} exceeds 32 bits`);
    return v;
  }

  /** The bounds [start, end) of a length-delimited field's bytes. */
  delimited(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (length > this.end - start) throw new MalformedHeader('length-delimited field overruns the header');
    this.pos = start + length;
    return [start, start + length];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.delimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new MalformedHeader(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new MalformedHeader('truncated field');
    this.pos += n;
  }
}

/**
 * Decodes the header in buf[start, end). Checksum bytes are a view into `buf`: use them before
 * the buffer is reused. Throws MalformedHeader.
 */
export function decodeBatchHeader(buf: Buffer, start: number, end: number): BatchHeader {
  const r = new Reader(buf, start, end);
  const h: BatchHeader = {
    migrationId: '',
    round: 0,
    sequence: 0,
    pfnCount: 0,
    flags: 0,
    pfns: [],
    encodings: null,
    compression: 0,
    payloadLength: 0,
    checksumAlgorithm: 0,
    checksum: new Uint8Array(0),
  };
  let encodingCount = 0;
  const encodings = new Uint8Array(MAX_BATCH_PAGES);
  const addPfn = (pfn: number) => {
    if (h.pfns.length >= MAX_BATCH_PAGES) throw new MalformedHeader(`more than ${MAX_BATCH_PAGES} pfns`);
    h.pfns.push(pfn);
  };
  const addEncoding = (value: number) => {
    if (encodingCount >= MAX_BATCH_PAGES) throw new MalformedHeader(`more than ${MAX_BATCH_PAGES} encodings`);
    // Out-of-range values are kept as 255 and refused by the batch checks with the pfn they belong to.
    encodings[encodingCount++] = value < 255 ? value : 255;
  };
  while (!r.done) {
    const tag = r.uint32('tag');
    switch (tag) {
      case TAG.migrationId: {
        const [s, e] = r.delimited();
        h.migrationId = buf.toString('utf8', s, e);
        break;
      }
      case TAG.round:
        h.round = r.uint32('round');
        break;
      case TAG.sequence:
        h.sequence = r.varint();
        break;
      case TAG.pfnCount:
        h.pfnCount = r.uint32('pfn_count');
        break;
      case TAG.flags:
        h.flags = r.uint32('flags');
        break;
      case TAG.pfnsPacked: {
        const [s, e] = r.delimited();
        const packed = new Reader(buf, s, e);
        while (!packed.done) addPfn(packed.varint());
        break;
      }
      case TAG.pfn:
        addPfn(r.varint());
        break;
      case TAG.encodingsPacked: {
        const [s, e] = r.delimited();
        const packed = new Reader(buf, s, e);
        while (!packed.done) addEncoding(packed.varint());
        break;
      }
      case TAG.encoding:
        addEncoding(r.varint());
        break;
      case TAG.compression:
        h.compression = r.varint();
        break;
      case TAG.payloadLength:
        h.payloadLength = r.uint32('payload_length');
        break;
      case TAG.checksumAlgorithm:
        h.checksumAlgorithm = r.varint();
        break;
      case TAG.checksum: {
        const [s, e] = r.delimited();
        h.checksum = buf.subarray(s, e);
        break;
      }
      case TAG.traceparent: {
        const [s, e] = r.delimited();
        h.traceparent = buf.toString('utf8', s, e);
        break;
      }
      default:
        r.skip(tag & 7);
    }
  }
  h.encodings = encodingCount > 0 ? encodings.slice(0, encodingCount) : null;
  return h;
}
