// The balloon driver's record of the pfns it has given back to the hypervisor: a stack of 32-bit
// pfns in kernel-reserved pages, its depth in the kernel state page. (Linux keeps ballooned pages
// on a list threaded through their struct page, which lives in guest memory too.)

import { KERNEL_STATE_PFN, KS, type KernelLayout } from './layout';
import { GuestFault, type PhysMem } from './phys-mem';
import { WORDS_PER_PAGE } from './platform';

export class BalloonList {
  private readonly capacity: number;

  constructor(
    private readonly mem: PhysMem,
    private readonly layout: KernelLayout,
  ) {
    this.capacity = layout.balloonListPages * WORDS_PER_PAGE;
  }

  format(): void {
    for (let p = 0; p < this.layout.balloonListPages; p++) this.mem.zeroPage(this.layout.balloonListPfn + p);
    this.mem.write32(KERNEL_STATE_PFN, KS.BALLOONED, 0);
  }

  get length(): number {
    return this.mem.read32(KERNEL_STATE_PFN, KS.BALLOONED);
  }

  push(pfn: number): void {
    const n = this.length;
    if (n >= this.capacity) throw new GuestFault(pfn, 'balloon list overflow');
    this.mem.write32(this.layout.balloonListPfn + (n >>> 10), n & (WORDS_PER_PAGE - 1), pfn);
    this.mem.write32(KERNEL_STATE_PFN, KS.BALLOONED, n + 1);
  }

  /** The most recently ballooned pfn, removed from the list; -1 when empty. */
  pop(): number {
    const n = this.length;
    if (n === 0) return -1;
    const pfn = this.mem.read32(this.layout.balloonListPfn + ((n - 1) >>> 10), (n - 1) & (WORDS_PER_PAGE - 1));
    this.mem.write32(KERNEL_STATE_PFN, KS.BALLOONED, n - 1);
    return pfn;
  }

  at(i: number): number {
    return this.mem.read32(this.layout.balloonListPfn + (i >>> 10), i & (WORDS_PER_PAGE - 1));
  }
}
