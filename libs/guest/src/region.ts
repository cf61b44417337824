// A virtually contiguous run of guest pages: the workload's "virtual memory". Its pfns are listed
// in guest memory through a two-level directory (root page → directory pages → data pages), like a
// page table, so a resumed guest finds its data again. A JS copy of the list is cached for speed
// and rebuilt from memory on open; the list never changes after creation.

import { GuestFault, type PhysMem } from './phys-mem';
import type { PageAllocator } from './page-allocator';
import { WORDS_PER_PAGE } from './platform';

const REGION_MAGIC = 0x314e4752; // "RGN1"
const ROOT = { MAGIC: 0, PAGES: 1, DIRECTORY_PAGES: 2, FIRST_DIRECTORY: 8 } as const;
export const REGION_MAX_PAGES = (WORDS_PER_PAGE - ROOT.FIRST_DIRECTORY) * WORDS_PER_PAGE;

export class Region {
  private constructor(
    readonly rootPfn: number,
    /** pfns[i] is the guest page holding region page i. */
    readonly pfns: Int32Array,
  ) {}

  get pages(): number {
    return this.pfns.length;
  }

  /** Pages a region of `pages` data pages takes in all, with its root and directory. */
  static footprint(pages: number): number {
    return pages + 1 + Math.ceil(pages / WORDS_PER_PAGE);
  }

  /**
   * Allocates a region of `pages` pages. `prepare(pfn, i)` initialises data page i (the allocator
   * hands out pages with stale contents). Throws when memory runs out (the pages taken so far stay
   * allocated: the guest cannot boot its workload anyway).
   */
  static async create(
    mem: PhysMem,
    allocator: PageAllocator,
    pages: number,
    prepare: (pfn: number, index: number) => void,
    pausePoint: () => Promise<void>,
  ): Promise<Region> {
    if (pages < 0 || pages > REGION_MAX_PAGES) throw new Error(`region of ${pages} pages: at most ${REGION_MAX_PAGES}`);
    const take = (): number => {
      const pfn = allocator.alloc();
      if (pfn < 0) throw new Error(`out of guest memory while allocating a region of ${pages} pages`);
      return pfn;
    };
    const root = take();
    mem.zeroPage(root);
    const directoryPages = Math.ceil(pages / WORDS_PER_PAGE);
    mem.write32(root, ROOT.MAGIC, REGION_MAGIC);
    mem.write32(root, ROOT.PAGES, pages);
    mem.write32(root, ROOT.DIRECTORY_PAGES, directoryPages);
    const pfns = new Int32Array(pages);
    for (let d = 0; d < directoryPages; d++) {
      const dir = take();
      mem.zeroPage(dir);
      mem.write32(root, ROOT.FIRST_DIRECTORY + d, dir);
      const end = Math.min(pages, (d + 1) * WORDS_PER_PAGE);
      for (let i = d * WORDS_PER_PAGE; i < end; i++) {
        const pfn = take();
        prepare(pfn, i);
        mem.write32(dir, i & (WORDS_PER_PAGE - 1), pfn);
        pfns[i] = pfn;
        if ((i & 255) === 255) await pausePoint();
      }
    }
    return new Region(root, pfns);
  }

  static open(mem: PhysMem, rootPfn: number): Region {
    if (mem.read32(rootPfn, ROOT.MAGIC) !== REGION_MAGIC) {
      throw new GuestFault(rootPfn, `pfn ${rootPfn} is not a region root (bad magic)`);
    }
    const pages = mem.read32(rootPfn, ROOT.PAGES);
    const directoryPages = mem.read32(rootPfn, ROOT.DIRECTORY_PAGES);
    if (pages < 0 || pages > REGION_MAX_PAGES || directoryPages !== Math.ceil(pages / WORDS_PER_PAGE)) {
      throw new GuestFault(rootPfn, `region root ${rootPfn} is corrupt (${pages} pages, ${directoryPages} directory pages)`);
    }
    const pfns = new Int32Array(pages);
    for (let d = 0; d < directoryPages; d++) {
      const dir = mem.read32(rootPfn, ROOT.FIRST_DIRECTORY + d);
      const end = Math.min(pages, (d + 1) * WORDS_PER_PAGE);
      for (let i = d * WORDS_PER_PAGE; i < end; i++) pfns[i] = mem.read32(dir, i & (WORDS_PER_PAGE - 1));
    }
    return new Region(rootPfn, pfns);
  }

  /** Returns every page (data, directory, root) to the allocator. */
  release(mem: PhysMem, allocator: PageAllocator): void {
    const directoryPages = mem.read32(this.rootPfn, ROOT.DIRECTORY_PAGES);
    for (let i = 0; i < this.pfns.length; i++) allocator.free(this.pfns[i]);
    for (let d = 0; d < directoryPages; d++) allocator.free(mem.read32(this.rootPfn, ROOT.FIRST_DIRECTORY + d));
    allocator.free(this.rootPfn);
  }
}
