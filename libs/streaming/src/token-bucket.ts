// The bandwidth cap of a round: a token bucket over wire bytes. Tokens accrue at the cap's rate up
// to `burstBytes`; taking more than there are puts the bucket in debt and waits until the debt is
// paid, so over any stretch of time the bytes granted stay within burst + rate × time.
// The clock is injectable so the accounting can be checked without waiting.

export interface BucketClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Resolves after `ms`; rejects with signal.reason when the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: BucketClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** When the bucket was created: the start of its accounting. */
  readonly startedAt: number;
  /** Bytes granted so far. */
  grantedBytes = 0;
  /** Milliseconds callers were told to wait, in total. */
  throttledMs = 0;

  constructor(
    readonly bytesPerSecond: number,
    readonly burstBytes: number,
    private readonly clock: BucketClock = systemClock,
  ) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`a token bucket needs a positive rate, got ${bytesPerSecond}`);
    if (!(burstBytes > 0)) throw new RangeError(`a token bucket needs a positive burst, got ${burstBytes}`);
    this.tokens = burstBytes;
    this.last = clock.now();
    this.startedAt = this.last;
  }

  /** A bucket for a cap in bits per second with a burst of `burstMs` worth of bytes (at least minBurstBytes). */
  static forBitsPerSecond(bitsPerSecond: number, opts: { burstMs?: number; minBurstBytes?: number; clock?: BucketClock } = {}): TokenBucket {
    const bytesPerSecond = bitsPerSecond / 8;
    const burst = Math.max(opts.minBurstBytes ?? 64 * 1024, (bytesPerSecond * (opts.burstMs ?? 50)) / 1000);
    return new TokenBucket(bytesPerSecond, burst, opts.clock);
  }

  /** Takes `bytes` tokens, waiting until the rate allows them. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const waitMs = this.reserve(bytes);
    if (waitMs > 0) await this.clock.sleep(waitMs, signal);
  }

  /** Takes `bytes` tokens now (possibly into debt) and answers how long to wait before using them. */
  reserve(bytes: number): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    this.tokens -= bytes;
    this.grantedBytes += bytes;
    if (this.tokens >= 0) return 0;
    const waitMs = (-this.tokens * 1000) / this.bytesPerSecond;
    this.throttledMs += waitMs;
    return waitMs;
  }

  /** The most bytes the cap allows from creation until `at`: burst + rate × elapsed. */
  allowance(at: number = this.clock.now()): number {
    return this.burstBytes + ((at - this.startedAt) * this.bytesPerSecond) / 1000;
  }
}
