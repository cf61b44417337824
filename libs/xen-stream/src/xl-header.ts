// The xl save-file header (tools/xl/xl.h, save_domain_core_writeconfig): what `xl save` and
// `xl migrate` put before the libxl stream, and what `xl restore` / `xl migrate-receive` read.
//
//   magic[32]  "Xen saved domain, xl format\n \0 \r"
//   u32        byteorder 0x01020304 (written in the domain's byte order: little-endian on x86)
//   u32        mandatory_flags (JSON | STREAMv2; unknown bits make a restore refuse)
//   u32        optional_flags
//   u32        optional_data_len
//   optional data: u32 config length, then the config (libxl JSON, NUL-terminated)

import { MalformedStream } from './errors';
import {
  XL_BYTEORDER,
  XL_HEADER_BYTES,
  XL_MAGIC,
  XL_MANDATORY_FLAG_JSON,
  XL_MANDATORY_FLAG_STREAMV2,
  XL_MANDATORY_FLAGS_KNOWN,
} from './format';

export interface XlFixedHeader {
  mandatoryFlags: number;
  optionalFlags: number;
  optionalDataLength: number;
}

export interface XlHeader extends XlFixedHeader {
  /** The domain config without its trailing NUL (libxl JSON when the JSON flag is set); null when absent. */
  config: string | null;
}

/** The whole xl header and its optional data, for a libxl v2 stream that follows. */
export function encodeXlHeader(configJson: string | null): Buffer {
  const config = configJson === null ? Buffer.alloc(0) : Buffer.concat([Buffer.from(configJson, 'utf8'), Buffer.from([0])]);
  const optional = Buffer.alloc(4 + config.length);
  optional.writeUInt32LE(config.length, 0);
  config.copy(optional, 4);
  const fixed = Buffer.alloc(XL_HEADER_BYTES);
  XL_MAGIC.copy(fixed, 0);
  fixed.writeUInt32LE(XL_BYTEORDER, 32);
  fixed.writeUInt32LE(XL_MANDATORY_FLAG_STREAMV2 | (config.length > 0 ? XL_MANDATORY_FLAG_JSON : 0), 36);
  fixed.writeUInt32LE(0, 40);
  fixed.writeUInt32LE(optional.length, 44);
  return Buffer.concat([fixed, optional]);
}

export function isXlMagic(bytes: Uint8Array): boolean {
  return bytes.byteLength >= XL_MAGIC.length && XL_MAGIC.equals(Buffer.from(bytes.buffer, bytes.byteOffset, XL_MAGIC.length));
}

/** The 48 fixed bytes; throws MalformedStream for what xl restore would refuse. */
export function decodeXlFixedHeader(bytes: Uint8Array): XlFixedHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, XL_HEADER_BYTES);
  if (!isXlMagic(b)) throw new MalformedStream('no xl header: the first 32 bytes are not "Xen saved domain, xl format"', 0);
  const byteorder = b.readUInt32LE(32);
  if (byteorder !== XL_BYTEORDER) {
    throw new MalformedStream(`xl header byte order 0x${byteorder.toString(16)}: only little-endian (x86) streams are supported`, 32);
  }
  const header = { mandatoryFlags: b.readUInt32LE(36), optionalFlags: b.readUInt32LE(40), optionalDataLength: b.readUInt32LE(44) };
  const unknown = header.mandatoryFlags & ~XL_MANDATORY_FLAGS_KNOWN;
  if (unknown) throw new MalformedStream(`xl header has unknown mandatory flags 0x${unknown.toString(16)}`, 36);
  if (!(header.mandatoryFlags & XL_MANDATORY_FLAG_STREAMV2)) {
    throw new MalformedStream('xl header announces a legacy (pre-v2) stream; only libxl stream v2 is supported', 36);
  }
  return header;
}

/** The config out of the optional data (the first 4 bytes give its length). */
export function decodeXlOptionalData(fixed: XlFixedHeader, optional: Uint8Array): XlHeader {
  const b = Buffer.from(optional.buffer, optional.byteOffset, optional.byteLength);
  if (b.length < 4) return { ...fixed, config: null };
  const length = b.readUInt32LE(0);
  if (4 + length > b.length) throw new MalformedStream(`xl config of ${length} bytes does not fit the ${b.length} bytes of optional data`, XL_HEADER_BYTES);
  if (length === 0) return { ...fixed, config: null };
  let text = b.subarray(4, 4 + length);
  if (text[text.length - 1] === 0) text = text.subarray(0, text.length - 1);
  return { ...fixed, config: text.toString('utf8') };
}
