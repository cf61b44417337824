// Walks a send set's bits in ascending pfn order, a batch at a time. With a `skip` bitmap (the
// PEEK taken just before the batch) it leaves out pages set there, as Xen's legacy saver left out
// pages in to_skip, and counts them.

export class SendSetCursor {
  /** Byte of the bitmap being walked, and its bits not visited yet. */
  private byte = 0;
  private bits: number;
  /** Pages left out because `skip` had them. */
  skipped = 0;

  constructor(
    private readonly bitmap: Uint8Array,
    private readonly maxPages: number,
  ) {
    this.bits = bitmap.length > 0 ? bitmap[0] : 0;
  }

  get done(): boolean {
    this.advanceToSetBit();
    return this.byte >= this.bitmap.length;
  }

  /** Up to `max` pfns of the set, skipping those set in `skip`. */
  next(max: number, skip: Uint8Array | null): number[] {
    const pfns: number[] = [];
    while (pfns.length < max) {
      this.advanceToSetBit();
      if (this.byte >= this.bitmap.length) break;
      const lowest = this.bits & -this.bits;
      this.bits &= this.bits - 1;
      const pfn = (this.byte << 3) | (31 - Math.clz32(lowest));
      if (pfn >= this.maxPages) continue;
      if (skip !== null && (skip[this.byte] & lowest) !== 0) {
        this.skipped++;
        continue;
      }
      pfns.push(pfn);
    }
    return pfns;
  }

  private advanceToSetBit(): void {
    while (this.bits === 0 && this.byte < this.bitmap.length) {
      this.byte++;
      this.bits = this.byte < this.bitmap.length ? this.bitmap[this.byte] : 0;
    }
  }
}
