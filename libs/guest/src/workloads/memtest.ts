// memtest: the "diabolical" writer of Clark et al. (MMuncher) and of Peter Xu's mig_mon: page
// writes over a region, sequential or random, faster than a 1 Gbit/s link can resend them
// (125 MB/s = 30,518 pages/s; shared/reference/literature.md §5c). Each write stamps the page with
// a new version (see stamped-pages.ts); one page per write is verified as a scrub, so a page that
// came back stale from a migration is counted in errors.
//
// Defaults: writeRate 0 = unthrottled (one core does millions of page writes/s, far above
// 32k pages/s), region = all of the workload's memory (hotSetFraction 1: §5c "hot set 50-100%"),
// pattern sequential. With phaseSeconds and hotSetFraction < 1 the written window moves.

import type { WorkloadSpec } from '@ferry/hypervisor';
import type { GuestOs } from '../guest-os';
import { Popularity } from '../popularity';
import { GuestFault } from '../phys-mem';
import { StampedPages } from './stamped-pages';
import { HEADER_MAGIC_WORD, orDefault, type Workload, type WorkloadProgram } from './workload';

const MAGIC = 0x54534d4d; // "MMST"
const H = { DATA_ROOT: 1, SHADOW_ROOT: 2, WINDOW: 3 } as const;
/** vCPU workload registers. */
const R_CURSOR = 0;
const R_SCRUB = 1;

export interface MemtestParams {
  rate: number;
  windowFraction: number;
  pattern: 'sequential' | 'random';
  phaseSeconds: number;
}

export function memtestParams(spec: WorkloadSpec): MemtestParams {
  return {
    rate: spec.writeRate && spec.writeRate > 0 ? spec.writeRate : 0,
    windowFraction: Math.min(1, orDefault(spec.hotSetFraction, 1)),
    pattern: spec.pattern === 'random' ? 'random' : 'sequential',
    phaseSeconds: orDefault(spec.phaseSeconds, 0),
  };
}

class Memtest implements Workload {
  readonly kind = 'memtest' as const;
  readonly rate: number;
  private readonly window: number;
  private readonly placement: Popularity;

  constructor(
    private readonly os: GuestOs,
    private readonly pages: StampedPages,
    private readonly params: MemtestParams,
  ) {
    this.rate = params.rate;
    this.window = Math.max(1, Math.round(pages.pages * params.windowFraction));
    // Only its hotStart() is used: where the written window sits in each phase.
    this.placement = new Popularity({ items: pages.pages, hotFraction: params.windowFraction, zipfS: 1, hotShare: 1 });
  }

  step(): void {
    const { vcpu } = this.os;
    const n = this.pages.pages;
    let offset: number;
    if (this.params.pattern === 'sequential') {
      offset = vcpu.reg(R_CURSOR) % this.window;
      vcpu.setReg(R_CURSOR, offset + 1);
    } else {
      offset = this.os.prng.nextInt(this.window);
    }
    let i = this.placement.hotStart(this.os.phase(this.params.phaseSeconds)) + offset;
    if (i >= n) i -= n;
    if (!this.pages.write(i)) this.os.countError(`memtest page ${i} was stale or corrupt when rewritten`);
    const s = vcpu.reg(R_SCRUB) % n;
    vcpu.setReg(R_SCRUB, s + 1);
    if (!this.pages.verify(s)) this.os.countError(`memtest page ${s} is stale or corrupt`);
  }

  stats(): Record<string, number | string> {
    return { pattern: this.params.pattern, region_pages: this.pages.pages, window_pages: this.window };
  }

  verifyAll(): number {
    let bad = 0;
    for (let i = 0; i < this.pages.pages; i++) {
      if (!this.pages.verify(i)) {
        bad++;
        this.os.countError(`memtest page ${i} is stale or corrupt`);
      }
    }
    return bad;
  }
}

export const memtestProgram: WorkloadProgram = {
  async format(os) {
    const params = memtestParams(os.spec);
    const header = os.allocator.alloc();
    if (header < 0) throw new Error('out of memory for the memtest header');
    os.mem.zeroPage(header);
    const pages = await StampedPages.create(os, Math.max(1, StampedPages.fit(os.workloadBudgetPages() - 1)), os.seed);
    os.mem.write32(header, HEADER_MAGIC_WORD, MAGIC);
    os.mem.write32(header, H.DATA_ROOT, pages.data.rootPfn);
    os.mem.write32(header, H.SHADOW_ROOT, pages.shadow.rootPfn);
    return { workload: new Memtest(os, pages, params), rootPfn: header };
  },
  open(os, rootPfn) {
    if (os.mem.read32(rootPfn, HEADER_MAGIC_WORD) !== MAGIC) throw new GuestFault(rootPfn, 'memtest header has a bad magic');
    const pages = StampedPages.open(os, os.mem.read32(rootPfn, H.DATA_ROOT), os.mem.read32(rootPfn, H.SHADOW_ROOT), os.seed);
    return new Memtest(os, pages, memtestParams(os.spec));
  },
};
