// The two headers that open a libxc stream (docs/specs/libxc-migration-stream.pandoc):
//
//   image header (big-endian): u64 marker 0xFF..FF, u32 id "XENF", u32 version 3,
//                              u16 options (bit 0 big-endian), u16 reserved, u32 reserved
//   domain header (stream endianness): u32 type (1 x86 PV, 2 x86 HVM), u16 page_shift 12,
//                              u16 reserved, u32 xen_major, u32 xen_minor

import { MalformedStream } from './errors';
import {
  LIBXC_DOMAIN_HEADER_BYTES,
  LIBXC_IDENT,
  LIBXC_IMAGE_HEADER_BYTES,
  LIBXC_MARKER,
  LIBXC_OPTION_BIG_ENDIAN,
  LIBXC_VERSION,
  LibxcDomainType,
  PAGE_SHIFT,
} from './format';

export interface LibxcImageHeader {
  version: number;
  options: number;
}

export interface LibxcDomainHeader {
  /** LibxcDomainType: 1 x86 PV, 2 x86 HVM (PVH included). */
  type: number;
  pageShift: number;
  xenMajor: number;
  xenMinor: number;
}

export function encodeLibxcImageHeader(): Buffer {
  const b = Buffer.alloc(LIBXC_IMAGE_HEADER_BYTES);
  b.writeBigUInt64BE(LIBXC_MARKER, 0);
  b.writeUInt32BE(LIBXC_IDENT, 8);
  b.writeUInt32BE(LIBXC_VERSION, 12);
  b.writeUInt16BE(0, 16); // little-endian
  return b;
}

export function isLibxcMarker(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE(0) === LIBXC_MARKER;
}

export function decodeLibxcImageHeader(bytes: Uint8Array, offset = 0): LibxcImageHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, LIBXC_IMAGE_HEADER_BYTES);
  if (!isLibxcMarker(b)) throw new MalformedStream('bad libxc image marker: a legacy (pre-v2) image or not a libxc stream', offset);
  const id = b.readUInt32BE(8);
  if (id !== LIBXC_IDENT) throw new MalformedStream(`bad libxc image id 0x${id.toString(16)}, expected "XENF"`, offset + 8);
  const version = b.readUInt32BE(12);
  if (version < 2 || version > 3) throw new MalformedStream(`libxc image version ${version}, expected 2 or 3`, offset + 12);
  const options = b.readUInt16BE(16);
  if (options & ~LIBXC_OPTION_BIG_ENDIAN) throw new MalformedStream(`reserved bits set in the libxc image options 0x${options.toString(16)}`, offset + 16);
  if (b.readUInt16BE(18) !== 0 || b.readUInt32BE(20) !== 0) throw new MalformedStream('reserved fields of the libxc image header are not zero', offset + 18);
  if (options & LIBXC_OPTION_BIG_ENDIAN) throw new MalformedStream('big-endian libxc stream: only little-endian (x86) streams are supported', offset + 16);
  return { version, options };
}

export function encodeLibxcDomainHeader(header: { type: number; xenMajor: number; xenMinor: number }): Buffer {
  const b = Buffer.alloc(LIBXC_DOMAIN_HEADER_BYTES);
  b.writeUInt32LE(header.type, 0);
  b.writeUInt16LE(PAGE_SHIFT, 4);
  b.writeUInt32LE(header.xenMajor, 8);
  b.writeUInt32LE(header.xenMinor, 12);
  return b;
}

export function decodeLibxcDomainHeader(bytes: Uint8Array, offset = 0): LibxcDomainHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, LIBXC_DOMAIN_HEADER_BYTES);
  const type = b.readUInt32LE(0);
  if (type !== LibxcDomainType.X86_PV && type !== LibxcDomainType.X86_HVM) throw new MalformedStream(`unknown libxc domain type ${type}`, offset);
  const pageShift = b.readUInt16LE(4);
  if (pageShift !== PAGE_SHIFT) throw new MalformedStream(`page shift ${pageShift}, expected ${PAGE_SHIFT}`, offset + 4);
  if (b.readUInt16LE(6) !== 0) throw new MalformedStream('reserved field of the libxc domain header is not zero', offset + 6);
  return { type, pageShift, xenMajor: b.readUInt32LE(8), xenMinor: b.readUInt32LE(12) };
}
