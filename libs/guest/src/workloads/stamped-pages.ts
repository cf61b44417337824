// Pages whose contents say what they should be: each carries its index, a version and a stamp
// derived from both, and a separate array of expected versions (the "shadow", in other pages)
// records every write. A page that is stale (a lost update), torn or zeroed disagrees with its
// stamp or its shadow version. Every write checks the page first, so a lost update is counted even
// when the page is rewritten before a scrub reaches it. Used by memtest and idle; both regions
// are in guest memory.
//
// Page layout (32-bit words): 0 index, 1 version, 2 stamp = hash(index, version, seed),
// 3 + (version mod 1021): the stamp again, so each version also changes a word inside the page.

import { hash3 } from '../checksum';
import type { GuestOs } from '../guest-os';
import type { PhysMem } from '../phys-mem';
import { WORDS_PER_PAGE } from '../platform';
import { Region } from '../region';

const W_INDEX = 0;
const W_VERSION = 1;
const W_STAMP = 2;
const PAYLOAD_BASE = 3;
const PAYLOAD_SPAN = 1021;

export class StampedPages {
  private constructor(
    private readonly mem: PhysMem,
    readonly data: Region,
    readonly shadow: Region,
    private readonly seed: number,
  ) {}

  get pages(): number {
    return this.data.pages;
  }

  /** Pages a set of n pages occupies in all (data, shadow, directories). */
  static footprint(n: number): number {
    return Region.footprint(n) + Region.footprint(Math.ceil(n / WORDS_PER_PAGE));
  }

  /** Largest n whose footprint fits in `budget` pages. */
  static fit(budget: number): number {
    let n = Math.max(0, budget - 4);
    while (n > 0 && StampedPages.footprint(n) > budget) n--;
    return n;
  }

  /** Allocates n pages filled with pseudo-random contents at version 1. */
  static async create(os: GuestOs, n: number, seed: number): Promise<StampedPages> {
    const { mem, allocator } = os;
    const shadow = await Region.create(mem, allocator, Math.ceil(n / WORDS_PER_PAGE), (pfn) => mem.zeroPage(pfn), () => os.pausePoint());
    const data = await Region.create(
      mem,
      allocator,
      n,
      (pfn, i) => {
        mem.fillWords(pfn, 0, WORDS_PER_PAGE, hash3(seed, i, 0x51ed));
      },
      () => os.pausePoint(),
    );
    const pages = new StampedPages(mem, data, shadow, seed);
    for (let i = 0; i < n; i++) pages.stamp(i);
    return pages;
  }

  static open(os: GuestOs, dataRoot: number, shadowRoot: number, seed: number): StampedPages {
    return new StampedPages(os.mem, Region.open(os.mem, dataRoot), Region.open(os.mem, shadowRoot), seed);
  }

  /**
   * Writes a new version of page i. Returns false when the page did not hold the version its
   * shadow expects before the write (a lost update that this write would otherwise paper over).
   */
  write(i: number): boolean {
    const intact = this.verify(i);
    this.stamp(i);
    return intact;
  }

  private stamp(i: number): void {
    const { mem } = this;
    const spfn = this.shadow.pfns[i >>> 10];
    const version = (mem.read32(spfn, i & 1023) + 1) | 0;
    mem.write32(spfn, i & 1023, version);
    const pfn = this.data.pfns[i];
    const stamp = hash3(i, version, this.seed) | 0;
    mem.write32(pfn, W_INDEX, i);
    mem.write32(pfn, W_VERSION, version);
    mem.write32(pfn, W_STAMP, stamp);
    mem.write32(pfn, PAYLOAD_BASE + ((version >>> 0) % PAYLOAD_SPAN), stamp);
  }

  /** True when page i holds the version its shadow expects, with a valid stamp. */
  verify(i: number): boolean {
    const { mem } = this;
    const expected = mem.read32(this.shadow.pfns[i >>> 10], i & 1023);
    const pfn = this.data.pfns[i];
    const version = mem.read32(pfn, W_VERSION);
    const stamp = hash3(i, version, this.seed) | 0;
    return (
      version === expected &&
      mem.read32(pfn, W_INDEX) === i &&
      mem.read32(pfn, W_STAMP) === stamp &&
      mem.read32(pfn, PAYLOAD_BASE + ((version >>> 0) % PAYLOAD_SPAN)) === stamp
    );
  }
}
