// Paces a workload at a rate on the wall clock. Pure: the caller passes the time in.

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** rate: operations per second (> 0); burst: most operations let through at once. */
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    if (!(rate > 0)) throw new Error(`token bucket rate must be > 0, got ${rate}`);
    this.tokens = 0;
    this.last = now;
    this.burst = Math.max(1, burst);
  }

  /** Whole operations allowed now (at most `max`); they are taken from the bucket. */
  take(nowMs: number, max: number): number {
    this.refill(nowMs);
    const n = Math.min(max, Math.floor(this.tokens));
    this.tokens -= n;
    return n;
  }

  /** Milliseconds until at least one operation is allowed. */
  msUntilNext(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.rate) * 1000;
  }

  private refill(nowMs: number): void {
    const dt = nowMs - this.last;
    if (dt > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (dt * this.rate) / 1000);
      this.last = nowMs;
    }
  }
}
