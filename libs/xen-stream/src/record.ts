// Record framing shared by the libxl and libxc streams: {type u32, body_length u32}, the body,
// then zeroes up to the next multiple of 8 bytes (little-endian: x86 streams only).

import { RECORD_ALIGN, RECORD_HEADER_BYTES } from './format';

export interface RecordHeader {
  type: number;
  /** Body length without the padding. */
  length: number;
}

/** The body length rounded up to the 8-byte boundary the padding reaches. */
export function paddedLength(length: number): number {
  return Math.ceil(length / RECORD_ALIGN) * RECORD_ALIGN;
}

/** One whole record: header, body (given in parts, concatenated) and zero padding. */
export function encodeRecord(type: number, ...bodyParts: Uint8Array[]): Buffer {
  const length = bodyParts.reduce((n, p) => n + p.byteLength, 0);
  const out = Buffer.alloc(RECORD_HEADER_BYTES + paddedLength(length)); // zero-filled: the padding
  out.writeUInt32LE(type >>> 0, 0);
  out.writeUInt32LE(length, 4);
  let at = RECORD_HEADER_BYTES;
  for (const part of bodyParts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

export function decodeRecordHeader(bytes: Uint8Array): RecordHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, RECORD_HEADER_BYTES);
  return { type: b.readUInt32LE(0), length: b.readUInt32LE(4) };
}
