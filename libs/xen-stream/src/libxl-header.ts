// The libxl stream v2 header (docs/specs/libxl-migration-stream.pandoc): always big-endian.
//
//   u64 ident "LibxlFmt", u32 version 2, u32 options (bit 0 big-endian records, bit 1 legacy
//   converted)

import { MalformedStream } from './errors';
import { LIBXL_HEADER_BYTES, LIBXL_IDENT, LIBXL_OPTION_BIG_ENDIAN, LIBXL_OPTION_LEGACY, LIBXL_VERSION } from './format';

export interface LibxlHeader {
  version: number;
  options: number;
}

export function encodeLibxlHeader(): Buffer {
  const b = Buffer.alloc(LIBXL_HEADER_BYTES);
  b.writeBigUInt64BE(LIBXL_IDENT, 0);
  b.writeUInt32BE(LIBXL_VERSION, 8);
  b.writeUInt32BE(0, 12); // little-endian records, not converted from a legacy stream
  return b;
}

export function isLibxlIdent(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE(0) === LIBXL_IDENT;
}

/** `offset` is where the header sits in the whole stream, for error messages. */
export function decodeLibxlHeader(bytes: Uint8Array, offset = 0): LibxlHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, LIBXL_HEADER_BYTES);
  if (!isLibxlIdent(b)) throw new MalformedStream(`bad libxl stream ident 0x${b.readBigUInt64BE(0).toString(16)}, expected "LibxlFmt"`, offset);
  const version = b.readUInt32BE(8);
  if (version !== LIBXL_VERSION) throw new MalformedStream(`libxl stream version ${version}, expected ${LIBXL_VERSION}`, offset + 8);
  const options = b.readUInt32BE(12);
  if (options & ~(LIBXL_OPTION_BIG_ENDIAN | LIBXL_OPTION_LEGACY)) {
    throw new MalformedStream(`reserved bits set in the libxl header options 0x${options.toString(16)}`, offset + 12);
  }
  if (options & LIBXL_OPTION_BIG_ENDIAN) throw new MalformedStream('big-endian libxl stream: only little-endian (x86) streams are supported', offset + 12);
  return { version, options };
}
