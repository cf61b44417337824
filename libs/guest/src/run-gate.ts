// How the guest's concurrent activities (workload loop, balloon worker, network handlers) are
// stopped at a clean point. JS runs one task at a time and each operation on guest memory is
// synchronous, so every await is a clean point: freezing only needs every activity to look at the
// gate after each await and park while it is frozen. Halting wakes every sleeper so loops end.

export class RunGate {
  private frozenFlag = false;
  private haltedFlag = false;
  private thawWaiters: (() => void)[] = [];
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();

  get frozen(): boolean {
    return this.frozenFlag;
  }

  get halted(): boolean {
    return this.haltedFlag;
  }

  /** True while activities may run. */
  get running(): boolean {
    return !this.frozenFlag && !this.haltedFlag;
  }

  freeze(): void {
    this.frozenFlag = true;
  }

  thaw(): void {
    this.frozenFlag = false;
    this.releaseThawWaiters();
  }

  halt(): void {
    this.haltedFlag = true;
    this.releaseThawWaiters();
    for (const s of this.sleepers) {
      clearTimeout(s.timer);
      s.wake();
    }
    this.sleepers.clear();
  }

  /** Resolves when not frozen (at once if not frozen; also when halted). */
  whenThawed(): Promise<void> | undefined {
    if (!this.frozenFlag || this.haltedFlag) return undefined;
    return new Promise((resolve) => this.thawWaiters.push(resolve));
  }

  /**
   * Sleeps ms, or less if the guest halts. `wakeable` receives a function that ends the sleep
   * early (and clears its timer).
   */
  sleep(ms: number, wakeable?: (wake: () => void) => void): Promise<void> {
    if (this.haltedFlag) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.sleepers.delete(entry);
          resolve();
        }, Math.max(0, ms)),
        wake: resolve,
      };
      this.sleepers.add(entry);
      wakeable?.(() => {
        clearTimeout(entry.timer);
        this.sleepers.delete(entry);
        resolve();
      });
    });
  }

  private releaseThawWaiters(): void {
    const waiters = this.thawWaiters;
    this.thawWaiters = [];
    for (const w of waiters) w();
  }
}

/** Lets I/O callbacks and messages (xenstore events, pause requests) run before continuing. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
