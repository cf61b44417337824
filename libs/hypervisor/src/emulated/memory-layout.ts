// How an emulated domain's memory is laid out in shared memory. The emulated host creates two
// POSIX shared memory objects per domain; its guest worker and every dom0 process (the driver)
// map the same objects:
//
//   RAM object   maxPages * 4 KiB of guest-physical memory, sparse (an unpopulated page is a hole),
//                mapped in windows of WINDOW_PAGES pages (a JS buffer cannot exceed 4 GiB).
//   meta object  page 0: the host's header words [0, 64) and the guest-visible control words
//                [64, 128) (MemoryBacking.control); then the p2m bitset and the log-dirty bitset,
//                each page-aligned: bit (pfn & 31) of 32-bit word (pfn >> 5).
//
// On a little-endian machine a bitset's bytes are exactly the DirtyBitmap byte order (pfn p is bit
// p & 7 of byte p >> 3), so bitmaps are copied out without reshuffling bits.

import { PAGE_SIZE } from '../driver';

/** 'FERY' read as a little-endian 32-bit word. */
export const EMU_MEMORY_MAGIC = 0x59524546;
export const EMU_MEMORY_LAYOUT_VERSION = 1;

/** RAM windows: 2^18 pages = 1 GiB (the guest's platform contract uses the same figure). */
export const WINDOW_PAGES = 1 << 18;
export const WINDOW_BYTES = WINDOW_PAGES * PAGE_SIZE;

/** Words of the host header at the start of the meta object. */
export const HEADER = {
  MAGIC: 0,
  VERSION: 1,
  MAX_PAGES: 2,
  /** A DomainStateCode, written by the host; dom0 processes read it before touching pages. */
  STATE: 3,
  /** Populated pages (nr_pages), kept exact with Atomics.add/sub by whoever changes the p2m. */
  NR_PAGES: 4,
  DOMID: 5,
  WORDS: 16,
} as const;

/** Byte offset of the guest-visible control words (MemoryBacking.control), and their count. */
export const CONTROL_BYTE_OFFSET = HEADER.WORDS * 4;
export const CONTROL_WORDS = 16;

export const DomainStateCode = {
  RUNNING: 1,
  PAUSED: 2,
  SHUTDOWN: 3,
  /** The domain is gone; a mapping that still exists must not be used. */
  DESTROYED: 4,
} as const;
export type DomainStateCode = (typeof DomainStateCode)[keyof typeof DomainStateCode];

export interface MetaLayout {
  maxPages: number;
  /** 32-bit words per bitset. */
  bitsetWords: number;
  p2mByteOffset: number;
  dirtyByteOffset: number;
  totalBytes: number;
}

function roundUpToPage(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
}

export function metaLayout(maxPages: number): MetaLayout {
  const bitsetWords = Math.ceil(maxPages / 32);
  const bitsetBytes = roundUpToPage(bitsetWords * 4);
  const p2mByteOffset = PAGE_SIZE;
  const dirtyByteOffset = p2mByteOffset + bitsetBytes;
  return { maxPages, bitsetWords, p2mByteOffset, dirtyByteOffset, totalBytes: dirtyByteOffset + bitsetBytes };
}

/** Bytes of a DirtyBitmap / p2m bitmap for maxPages pfns. */
export function bitmapBytes(maxPages: number): number {
  return Math.ceil(maxPages / 8);
}

export interface DomainMemoryNames {
  ram: string;
  meta: string;
}

/** Characters allowed in a host name inside shared memory object names. */
function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

/**
 * Every shared memory object of one emulated host process starts with this prefix, so a test (or an
 * operator) can find leftovers: /ferry-<host>-<pid>-.
 */
export function hostShmPrefix(hostName: string, pid: number): string {
  return `/ferry-${sanitize(hostName)}-${pid}-`;
}

export function domainMemoryNames(hostName: string, pid: number, domid: number): DomainMemoryNames {
  const base = `${hostShmPrefix(hostName, pid)}d${domid}`;
  return { ram: `${base}-ram`, meta: `${base}-meta` };
}
