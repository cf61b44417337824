// PAGE_DATA, the record that carries memory (libxc stream, type 0x01):
//
//   u32 count (> 0), u32 reserved, u64 pfn[count], then 4096 bytes per entry whose type has data
//
// Each pfn entry holds the page type in bits 63-60 (XEN_DOMCTL_PFINFO_* >> 28), zero in 59-52
// and the pfn in 51-0. Normal pages (NOTAB) and page tables carry data; XTAB (not populated),
// XALLOC and BROKEN carry none. A restore takes a pfn as often as it comes; the last copy wins.

import { MalformedStream, StreamWriteError } from './errors';
import { isKnownPageType, LibxcRecordType, MAX_PAGE_DATA_PFNS, MAX_PFN, PAGE_SIZE, PageType, pageTypeHasData, RECORD_HEADER_BYTES } from './format';

/** One entry of a PAGE_DATA record. `data` is the page (4096 bytes) or null for a type without data. */
export interface StreamPage {
  pfn: number;
  /** Defaults to NOTAB when `data` is given, XTAB when it is null. */
  type?: number;
  data: Uint8Array | null;
}

export interface DecodedPage {
  pfn: number;
  type: number;
  /** A view into the record body; null for types without data. */
  data: Buffer | null;
}

const HIGH_TYPE_SHIFT = 28; // bits 63-60 of the entry are bits 31-28 of its high word
const PFN_HIGH_MASK = 0x000f_ffff; // bits 51-32
const RESERVED_HIGH_MASK = 0x0ff0_0000; // bits 59-52

/** A whole PAGE_DATA record (header, body; the body is always a multiple of 8 bytes). */
export function encodePageDataRecord(pages: readonly StreamPage[]): Buffer {
  if (pages.length === 0) throw new StreamWriteError('a PAGE_DATA record needs at least one pfn');
  if (pages.length > MAX_PAGE_DATA_PFNS) throw new StreamWriteError(`a PAGE_DATA record takes at most ${MAX_PAGE_DATA_PFNS} pfns, got ${pages.length}`);
  const types = pages.map(entryType);
  const withData = types.filter(pageTypeHasData).length;
  const bodyLength = 8 + 8 * pages.length + PAGE_SIZE * withData;
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
  out.writeUInt32LE(LibxcRecordType.PAGE_DATA, 0);
  out.writeUInt32LE(bodyLength, 4);
  out.writeUInt32LE(pages.length, 8);
  out.writeUInt32LE(0, 12);
  let entryAt = 16;
  let dataAt = 16 + 8 * pages.length;
  for (let i = 0; i < pages.length; i++) {
    const { pfn, data } = pages[i];
    const type = types[i];
    out.writeUInt32LE(pfn % 0x1_0000_0000, entryAt);
    out.writeUInt32LE((Math.floor(pfn / 0x1_0000_0000) | (type << HIGH_TYPE_SHIFT)) >>> 0, entryAt + 4);
    entryAt += 8;
    if (pageTypeHasData(type)) {
      if (!data || data.byteLength !== PAGE_SIZE) throw new StreamWriteError(`pfn ${pfn}: a page of type ${type} needs exactly ${PAGE_SIZE} bytes of data`);
      out.set(data, dataAt);
      dataAt += PAGE_SIZE;
    } else if (data) {
      throw new StreamWriteError(`pfn ${pfn}: a page of type 0x${type.toString(16)} carries no data`);
    }
  }
  return out;
}

function entryType(page: StreamPage): number {
  if (!Number.isInteger(page.pfn) || page.pfn < 0 || page.pfn > MAX_PFN) throw new StreamWriteError(`pfn ${page.pfn} does not fit in 52 bits`);
  const type = page.type ?? (page.data ? PageType.NOTAB : PageType.XTAB);
  if (!isKnownPageType(type)) throw new StreamWriteError(`pfn ${page.pfn}: unknown page type 0x${type.toString(16)}`);
  return type;
}

/** The entries of a PAGE_DATA body, checked as Xen's verifier checks them. `offset` locates errors. */
export function decodePageData(body: Buffer, offset = 0): DecodedPage[] {
  if (body.length <= 8) throw new MalformedStream(`PAGE_DATA body of ${body.length} bytes; it needs more than 8`, offset);
  const count = body.readUInt32LE(0);
  if (body.readUInt32LE(4) !== 0) throw new MalformedStream('reserved field of PAGE_DATA is not zero', offset + 4);
  if (count === 0) throw new MalformedStream('PAGE_DATA with a count of 0', offset);
  if (body.length < 8 + 8 * count) throw new MalformedStream(`PAGE_DATA of ${count} pfns is only ${body.length} bytes long`, offset);
  const pages: DecodedPage[] = [];
  let dataAt = 8 + 8 * count;
  for (let i = 0; i < count; i++) {
    const at = 8 + 8 * i;
    const low = body.readUInt32LE(at);
    const high = body.readUInt32LE(at + 4);
    if (high & RESERVED_HIGH_MASK) throw new MalformedStream(`reserved bits set in pfn entry ${i}`, offset + at);
    const type = high >>> HIGH_TYPE_SHIFT;
    if (!isKnownPageType(type)) throw new MalformedStream(`invalid page type 0x${type.toString(16)} in pfn entry ${i}`, offset + at);
    const pfn = (high & PFN_HIGH_MASK) * 0x1_0000_0000 + low;
    let data: Buffer | null = null;
    if (pageTypeHasData(type)) {
      if (dataAt + PAGE_SIZE > body.length) throw new MalformedStream(`PAGE_DATA is too short for the data of pfn entry ${i}`, offset + at);
      data = body.subarray(dataAt, dataAt + PAGE_SIZE);
      dataAt += PAGE_SIZE;
    }
    pages.push({ pfn, type, data });
  }
  if (dataAt !== body.length) throw new MalformedStream(`PAGE_DATA has ${body.length - dataAt} bytes beyond its pages`, offset + dataAt);
  return pages;
}
