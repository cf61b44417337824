// Where the kernel keeps its own state in guest memory. Everything a guest needs to continue after
// a migration is reachable from the superblock at pfn 0; nothing lives only in JS objects.
//
//   pfn 0                superblock: magic, layout version, sizes, the workload spec (JSON) and
//                        seed, pointers to everything below
//   pfn 1                kernel state: allocator and balloon counters, op and error counters
//   pfn 2 ..             page allocator's free bitmap (1 bit per pfn, set = free)
//   then                 balloon list (one 32-bit pfn per ballooned page, a stack)
//   then                 free pages, handed out by the allocator (the workload's data lives there)

import { PAGE_SIZE, WORDS_PER_PAGE } from './platform';

/** "FERY" little-endian. */
export const SUPERBLOCK_MAGIC = 0x59524546;
/** Bump when any offset in this file changes: a guest of another layout refuses to resume. */
export const LAYOUT_VERSION = 1;

export const SUPERBLOCK_PFN = 0;
export const KERNEL_STATE_PFN = 1;
export const FIRST_BITMAP_PFN = 2;

/** Word offsets in the superblock page. Written once at boot. */
export const SB = {
  MAGIC: 0,
  VERSION: 1,
  MAX_PAGES: 2,
  BITMAP_PFN: 3,
  BITMAP_PAGES: 4,
  BALLOON_LIST_PFN: 5,
  BALLOON_LIST_PAGES: 6,
  /** First pfn the allocator manages; pfns below are the kernel's. */
  RESERVED_END: 7,
  WORKLOAD_KIND: 8,
  SEED: 9,
  /** The workload's header page. */
  WORKLOAD_ROOT_PFN: 10,
  /** Wall-clock boot time in ms, 64-bit (two words). Phases are counted from it. */
  BOOT_TIME_MS: 12,
  /** Byte length of the workload spec JSON stored at SPEC_JSON_BYTE_OFFSET. */
  SPEC_JSON_LENGTH: 16,
} as const;

export const SPEC_JSON_BYTE_OFFSET = 1024;
export const SPEC_JSON_MAX_BYTES = PAGE_SIZE - SPEC_JSON_BYTE_OFFSET;

/** Word offsets in the kernel state page. Written as the guest runs. */
export const KS = {
  /** Pages free in the allocator. */
  FREE_PAGES: 0,
  /** Bitmap word where the next allocation search starts (next fit). */
  ALLOC_CURSOR: 1,
  /** Entries in the balloon list = pages given back to the hypervisor. */
  BALLOONED: 2,
  /** Completed workload operations, 64-bit. */
  OPS: 4,
  /** Self-check failures (corrupt or lost data), 64-bit. */
  ERRORS: 6,
  /** 1 once boot has laid out the workload: a guest that is resumed must find it set. */
  BOOTED: 8,
} as const;

export const BITMAP_PFNS_PER_PAGE = WORDS_PER_PAGE * 32;
export const BALLOON_ENTRIES_PER_PAGE = WORDS_PER_PAGE;

export interface KernelLayout {
  maxPages: number;
  bitmapPfn: number;
  bitmapPages: number;
  balloonListPfn: number;
  balloonListPages: number;
  reservedEnd: number;
}

/** Kernel-reserved pages for a guest of maxPages. */
export function planKernelLayout(maxPages: number): KernelLayout {
  const bitmapPages = Math.ceil(maxPages / BITMAP_PFNS_PER_PAGE);
  const balloonListPages = Math.ceil(maxPages / BALLOON_ENTRIES_PER_PAGE);
  const bitmapPfn = FIRST_BITMAP_PFN;
  const balloonListPfn = bitmapPfn + bitmapPages;
  const reservedEnd = balloonListPfn + balloonListPages;
  return { maxPages, bitmapPfn, bitmapPages, balloonListPfn, balloonListPages, reservedEnd };
}

export const WORKLOAD_KINDS = ['kv', 'web', 'db', 'compile', 'memtest', 'idle'] as const;
