// Which item an operation touches: the two-tier model that fits the memcached dirtying curve
// (shared/reference/literature.md §5b): a hot set that takes most operations, skewed inside by
// Zipf(s), over a uniform cold background. Hot ranks map to a contiguous run of items so that a
// hot set of 2% of the data occupies about 2% of its pages, as in the fitted model. The run moves
// to another place at every phase change.

import type { Prng } from './prng';
import { ZipfSampler } from './zipf';

export interface PopularityParams {
  items: number;
  /** Hot items as a fraction of all items, 0..1. */
  hotFraction: number;
  /** Zipf exponent inside the hot set. */
  zipfS: number;
  /** Share of operations that go to the hot set, 0..1. */
  hotShare: number;
}

export class Popularity {
  readonly hotItems: number;
  private readonly zipf: ZipfSampler;

  constructor(private readonly params: PopularityParams) {
    if (!(params.items >= 1)) throw new Error('popularity needs at least one item');
    this.hotItems = Math.max(1, Math.min(params.items, Math.round(params.items * params.hotFraction)));
    this.zipf = new ZipfSampler(this.hotItems, params.zipfS);
  }

  /** First item of the hot run during `phase`. */
  hotStart(phase: number): number {
    if (phase === 0) return 0;
    // Golden-ratio steps spread successive hot runs over the whole item range.
    const frac = (phase * 0.6180339887498949) % 1;
    return Math.floor(frac * this.params.items);
  }

  /** An item index in [0, items). */
  pick(prng: Prng, phase: number): number {
    const { items, hotShare } = this.params;
    if (prng.nextFloat() < hotShare) {
      const rank = this.zipf.sample(prng) - 1;
      const i = this.hotStart(phase) + rank;
      return i >= items ? i - items : i;
    }
    return prng.nextInt(items);
  }
}
