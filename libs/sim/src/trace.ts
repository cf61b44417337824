// Dirty traces: which pages a guest dirties over time. Either generated from a seeded write model
// (a Zipf hot set over part of memory plus a uniform cold background and sequential appends) or
// recorded from an emulated guest as a series of CLEAN bitmaps at a fixed interval.

export interface DirtyTrace {
  /** p2m size: pages the bitmaps cover. */
  readonly pages: number;
  /** Populated pages before compaction (the p2m a round 0 sends), as a bitmap. */
  readonly p2m: Uint8Array;
  /** Pages the guest could give back to a balloon (free memory it reports). */
  readonly freePages: number;
  /** Pages dirtied in [fromMs, toMs), as a bitmap (bit p of byte p >> 3). Deterministic. */
  dirtiedBetween(fromMs: number, toMs: number): Uint8Array;
  /** Pages the guest ever writes (the rest is what a balloon can take without disturbing it). */
  everDirtied(): Uint8Array;
}

/** A small seeded PRNG (xorshift32): the same seed gives the same trace. */
export class Xorshift32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x / 0x100000000;
  }
}

export interface WriteModel {
  pages: number;
  /** Fraction of memory free (never written, given back by compaction). */
  freeFraction: number;
  /** Fraction of the used memory forming the hot set. */
  hotFraction: number;
  /** Zipf exponent over the hot set. */
  zipfS: number;
  /** Page writes per second into the hot set. */
  hotWritesPerS: number;
  /** Page writes per second spread uniformly over the used memory. */
  coldWritesPerS: number;
  /** Pages per second appended sequentially (logs, WAL) through a ring of used memory. */
  appendPagesPerS: number;
  seed: number;
}

/**
 * A generated trace. Time is cut into 1 ms slots; the writes of each slot are drawn from a PRNG
 * seeded by (seed, slot), so any interval is reproducible on its own.
 */
export class ModelTrace implements DirtyTrace {
  readonly pages: number;
  readonly p2m: Uint8Array;
  readonly freePages: number;
  private readonly used: number;
  private readonly hot: number;
  private readonly zipfCdf: Float64Array;
  /** The hot set is scattered through used memory, as a real allocator would place it. */
  private readonly hotPfn: Uint32Array;

  constructor(readonly model: WriteModel) {
    this.pages = model.pages;
    this.used = Math.max(1, Math.round(model.pages * (1 - model.freeFraction)));
    this.freePages = model.pages - this.used;
    this.p2m = rangeBitmap(model.pages, 0, model.pages);
    this.hot = Math.max(1, Math.round(this.used * model.hotFraction));
    this.zipfCdf = new Float64Array(this.hot);
    let sum = 0;
    for (let i = 0; i < this.hot; i++) {
      sum += 1 / Math.pow(i + 1, model.zipfS);
      this.zipfCdf[i] = sum;
    }
    for (let i = 0; i < this.hot; i++) this.zipfCdf[i] /= sum;
    const rng = new Xorshift32(model.seed ^ 0x5bd1e995);
    this.hotPfn = new Uint32Array(this.hot);
    for (let i = 0; i < this.hot; i++) this.hotPfn[i] = Math.floor(rng.next() * this.used);
  }

  dirtiedBetween(fromMs: number, toMs: number): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.pages / 8));
    const m = this.model;
    const first = Math.floor(fromMs);
    const last = Math.ceil(toMs);
    for (let slot = first; slot < last; slot++) {
      const rng = new Xorshift32((m.seed * 2654435761) ^ (slot * 40503 + 1));
      const hotWrites = poissonish(m.hotWritesPerS / 1000, rng);
      for (let i = 0; i < hotWrites; i++) set(out, this.hotPfn[this.zipfIndex(rng.next())]);
      const coldWrites = poissonish(m.coldWritesPerS / 1000, rng);
      for (let i = 0; i < coldWrites; i++) set(out, Math.floor(rng.next() * this.used));
      if (m.appendPagesPerS > 0) {
        // The append cursor covers [slot*rate, (slot+1)*rate) pages of a ring over used memory.
        const a = Math.floor((slot * m.appendPagesPerS) / 1000);
        const b = Math.floor(((slot + 1) * m.appendPagesPerS) / 1000);
        for (let p = a; p <= b; p++) set(out, p % this.used);
      }
    }
    return out;
  }

  everDirtied(): Uint8Array {
    return rangeBitmap(this.pages, 0, this.used);
  }

  private zipfIndex(u: number): number {
    let lo = 0;
    let hi = this.hot - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.zipfCdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A deterministic count with mean `mean`: the integer part plus one with the fractional probability. */
function poissonish(mean: number, rng: Xorshift32): number {
  const whole = Math.floor(mean);
  return whole + (rng.next() < mean - whole ? 1 : 0);
}

function set(bitmap: Uint8Array, pfn: number): void {
  bitmap[pfn >> 3] |= 1 << (pfn & 7);
}

function rangeBitmap(pages: number, from: number, to: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(pages / 8));
  for (let p = from; p < to; p++) set(b, p);
  return b;
}

/** A trace recorded from a live guest: one CLEAN bitmap every `intervalMs`. */
export interface RecordedTraceFile {
  format: 'ferry-dirty-trace/v1';
  workload: string;
  pages: number;
  /** Base64 p2m bitmap when recording started. */
  p2m: string;
  freePages: number;
  intervalMs: number;
  /** Base64 bitmaps, one per interval. */
  bitmaps: string[];
}

export class RecordedTrace implements DirtyTrace {
  readonly pages: number;
  readonly p2m: Uint8Array;
  readonly freePages: number;
  private readonly frames: Uint8Array[];

  constructor(readonly file: RecordedTraceFile) {
    if (file.format !== 'ferry-dirty-trace/v1') throw new Error(`not a ferry dirty trace (format ${String(file.format)})`);
    this.pages = file.pages;
    this.freePages = file.freePages;
    this.p2m = new Uint8Array(Buffer.from(file.p2m, 'base64'));
    this.frames = file.bitmaps.map((b) => new Uint8Array(Buffer.from(b, 'base64')));
    if (this.frames.length === 0) throw new Error('the trace has no bitmaps');
  }

  everDirtied(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.pages / 8));
    for (const f of this.frames) for (let i = 0; i < out.length; i++) out[i] |= f[i];
    return out;
  }

  /** Time beyond the recording wraps around: the guest is assumed to repeat its behaviour. */
  dirtiedBetween(fromMs: number, toMs: number): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.pages / 8));
    const dt = this.file.intervalMs;
    for (let k = Math.floor(fromMs / dt); k * dt < toMs; k++) {
      const frame = this.frames[k % this.frames.length];
      for (let i = 0; i < out.length; i++) out[i] |= frame[i];
    }
    return out;
  }
}
