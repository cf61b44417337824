// idle: a guest that mostly sleeps. Its used memory is filled with stamped pages (so it is real,
// non-zero data a migration must carry), and a few times a second it writes one page of a small
// set (a timer tick, a log line) and scrubs one page. Defaults: 4 writes/s, ≈16 KiB/s, well under
// the "< 1 MB/s background" of an idle VM (shared/reference/literature.md §5c); active set 1% of
// its pages.

import type { WorkloadSpec } from '@ferry/hypervisor';
import type { GuestOs } from '../guest-os';
import { GuestFault } from '../phys-mem';
import { StampedPages } from './stamped-pages';
import { HEADER_MAGIC_WORD, orDefault, type Workload, type WorkloadProgram } from './workload';

const MAGIC = 0x454c4449; // "IDLE"
const H = { DATA_ROOT: 1, SHADOW_ROOT: 2 } as const;
const R_SCRUB = 0;

export interface IdleParams {
  rate: number;
  activeFraction: number;
}

export function idleParams(spec: WorkloadSpec): IdleParams {
  return { rate: orDefault(spec.writeRate, 4), activeFraction: Math.min(1, orDefault(spec.hotSetFraction, 0.01)) };
}

class Idle implements Workload {
  readonly kind = 'idle' as const;
  readonly rate: number;
  private readonly active: number;

  constructor(
    private readonly os: GuestOs,
    private readonly pages: StampedPages,
    params: IdleParams,
  ) {
    this.rate = params.rate;
    this.active = Math.max(1, Math.round(pages.pages * params.activeFraction));
  }

  step(): void {
    const i = this.os.prng.nextInt(this.active);
    if (!this.pages.write(i)) this.os.countError(`idle page ${i} was stale or corrupt when rewritten`);
    const { vcpu } = this.os;
    const s = vcpu.reg(R_SCRUB) % this.pages.pages;
    vcpu.setReg(R_SCRUB, s + 1);
    if (!this.pages.verify(s)) this.os.countError(`idle page ${s} is stale or corrupt`);
  }

  stats(): Record<string, number | string> {
    return { data_pages: this.pages.pages, active_pages: this.active };
  }

  verifyAll(): number {
    let bad = 0;
    for (let i = 0; i < this.pages.pages; i++) {
      if (!this.pages.verify(i)) {
        bad++;
        this.os.countError(`idle page ${i} is stale or corrupt`);
      }
    }
    return bad;
  }
}

export const idleProgram: WorkloadProgram = {
  async format(os) {
    const header = os.allocator.alloc();
    if (header < 0) throw new Error('out of memory for the idle header');
    os.mem.zeroPage(header);
    const pages = await StampedPages.create(os, Math.max(1, StampedPages.fit(os.workloadBudgetPages() - 1)), os.seed);
    os.mem.write32(header, HEADER_MAGIC_WORD, MAGIC);
    os.mem.write32(header, H.DATA_ROOT, pages.data.rootPfn);
    os.mem.write32(header, H.SHADOW_ROOT, pages.shadow.rootPfn);
    return { workload: new Idle(os, pages, idleParams(os.spec)), rootPfn: header };
  },
  open(os, rootPfn) {
    if (os.mem.read32(rootPfn, HEADER_MAGIC_WORD) !== MAGIC) throw new GuestFault(rootPfn, 'idle header has a bad magic');
    const pages = StampedPages.open(os, os.mem.read32(rootPfn, H.DATA_ROOT), os.mem.read32(rootPfn, H.SHADOW_ROOT), os.seed);
    return new Idle(os, pages, idleParams(os.spec));
  },
};
