// The guest's page allocator. Its whole state is in guest memory: a free bitmap (bit set = free)
// in kernel-reserved pages and two counters in the kernel state page, so a migrated guest's
// allocator continues exactly where it was.
//
// Allocation is next fit: the search starts at the bitmap word where the last one ended, which
// keeps allocation O(1) amortised while memory is mostly free and spreads pages like a real
// allocator's would.

import { KERNEL_STATE_PFN, KS, type KernelLayout } from './layout';
import { GuestFault, type PhysMem } from './phys-mem';
import { WORDS_PER_PAGE } from './platform';

export class PageAllocator {
  private readonly bitmapWords: number;

  constructor(
    private readonly mem: PhysMem,
    private readonly layout: KernelLayout,
  ) {
    this.bitmapWords = Math.ceil(layout.maxPages / 32);
  }

  /**
   * At first boot: every populated pfn at or above reservedEnd is free; unpopulated ones are not
   * (the caller records those as ballooned).
   */
  format(): void {
    const { mem, layout } = this;
    for (let p = 0; p < layout.bitmapPages; p++) mem.zeroPage(layout.bitmapPfn + p);
    let free = 0;
    for (let pfn = layout.reservedEnd; pfn < layout.maxPages; pfn++) {
      if (!mem.isPopulated(pfn)) continue;
      this.setBit(pfn);
      free++;
    }
    mem.write32(KERNEL_STATE_PFN, KS.FREE_PAGES, free);
    mem.write32(KERNEL_STATE_PFN, KS.ALLOC_CURSOR, layout.reservedEnd >>> 5);
  }

  get freePages(): number {
    return this.mem.read32(KERNEL_STATE_PFN, KS.FREE_PAGES);
  }

  /** Number of pfns the allocator manages (free or not). */
  get managedPages(): number {
    return this.layout.maxPages - this.layout.reservedEnd;
  }

  isFree(pfn: number): boolean {
    if (pfn < this.layout.reservedEnd || pfn >= this.layout.maxPages) return false;
    const w = pfn >>> 5;
    return ((this.mem.read32(this.layout.bitmapPfn + (w >>> 10), w & (WORDS_PER_PAGE - 1)) >>> (pfn & 31)) & 1) === 1;
  }

  /** A free page, or -1 when none is left. The page keeps whatever it held before. */
  alloc(): number {
    const { mem } = this;
    if (mem.read32(KERNEL_STATE_PFN, KS.FREE_PAGES) === 0) return -1;
    const bitmapPfn = this.layout.bitmapPfn;
    const start = mem.read32(KERNEL_STATE_PFN, KS.ALLOC_CURSOR) % this.bitmapWords;
    let w = start;
    for (let scanned = 0; scanned <= this.bitmapWords; scanned++) {
      const page = bitmapPfn + (w >>> 10);
      const off = w & (WORDS_PER_PAGE - 1);
      const bits = mem.read32(page, off);
      if (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        mem.write32(page, off, bits & ~(1 << bit));
        mem.add32(KERNEL_STATE_PFN, KS.FREE_PAGES, -1);
        mem.write32(KERNEL_STATE_PFN, KS.ALLOC_CURSOR, w);
        return (w << 5) | bit;
      }
      w = w + 1 === this.bitmapWords ? 0 : w + 1;
    }
    throw new GuestFault(KERNEL_STATE_PFN, 'page allocator: free count says pages are free but the bitmap has none');
  }

  /** Up to `want` free pages into out[0..]; returns how many it got. */
  allocMany(want: number, out: Int32Array): number {
    const n = Math.min(want, out.length);
    let got = 0;
    while (got < n) {
      const pfn = this.alloc();
      if (pfn < 0) break;
      out[got++] = pfn;
    }
    return got;
  }

  /** Returns a page to the allocator. Freeing a page that is free or the kernel's is a guest bug. */
  free(pfn: number): void {
    if (pfn < this.layout.reservedEnd || pfn >= this.layout.maxPages) {
      throw new GuestFault(pfn, `page allocator: free of pfn ${pfn}, which the allocator does not manage`);
    }
    const w = pfn >>> 5;
    const page = this.layout.bitmapPfn + (w >>> 10);
    const off = w & (WORDS_PER_PAGE - 1);
    const bits = this.mem.read32(page, off);
    const bit = 1 << (pfn & 31);
    if ((bits & bit) !== 0) throw new GuestFault(pfn, `page allocator: double free of pfn ${pfn}`);
    this.mem.write32(page, off, bits | bit);
    this.mem.add32(KERNEL_STATE_PFN, KS.FREE_PAGES, 1);
  }

  /** Recounts the bitmap (for checks): the number of free bits. */
  countFreeBits(): number {
    let n = 0;
    for (let w = 0; w < this.bitmapWords; w++) {
      let bits = this.mem.read32(this.layout.bitmapPfn + (w >>> 10), w & (WORDS_PER_PAGE - 1));
      while (bits !== 0) {
        bits &= bits - 1;
        n++;
      }
    }
    return n;
  }

  private setBit(pfn: number): void {
    const w = pfn >>> 5;
    const page = this.layout.bitmapPfn + (w >>> 10);
    const off = w & (WORDS_PER_PAGE - 1);
    this.mem.write32(page, off, this.mem.read32(page, off) | (1 << (pfn & 31)));
  }
}
