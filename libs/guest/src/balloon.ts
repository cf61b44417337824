// The balloon driver, after Linux's drivers/xen/balloon.c (shared/reference/xen.md §4.3).
//
// A xenstore watch on memory/target (KiB) sets the target; a worker moves the current size
// (populated pages = max_pages - ballooned) towards it in steps of at most 512 pages, one
// hypercall per step:
//  - inflate (target below current): take *free* pages from the page allocator, never more than
//    is free (less a small reserve the kernel keeps for its own churn, as Linux keeps
//    totalreserve_pages), record them in the balloon list and XENMEM_decrease_reservation them;
//  - deflate (target above current): pop pfns from the balloon list, XENMEM_populate_physmap them
//    and hand them back to the allocator.
// A step that does all it was asked to is DONE and the worker goes on at once. A step that falls
// short (no free memory, the host has none to give) is EAGAIN: the worker retries after a delay
// that doubles each time. As in Linux's update_schedule(), the retry counter starts at 1 and after
// max_retry_count (4) failed steps the driver gives up (ECANCELED) until the target changes.
// Delays are Linux's scaled by 1/4 so that a compaction settles within a test or benchmark:
// first retry after 0.5 s (Linux: 2 s), doubling, capped at 8 s (Linux: 32 s); ECANCELED waits
// 900 s (Linux: 3600 s) or a new target.

import { kibToPages } from '@ferry/hypervisor';
import type { BalloonList } from './balloon-list';
import type { GuestOs } from './guest-os';
import { yieldToEventLoop, type RunGate } from './run-gate';

/** PAGE_SIZE / sizeof(xen_pfn_t): Linux's frame_list holds 512 pfns per hypercall. */
export const BALLOON_BATCH_PAGES = 512;
export const BALLOON_BASE_DELAY_MS = 250;
export const BALLOON_MAX_DELAY_MS = 8000;
export const BALLOON_MAX_RETRY_COUNT = 4;
export const BALLOON_CANCELED_WAIT_MS = 900_000;

export type BalloonState = 'done' | 'eagain' | 'ecanceled';

export interface BalloonHooks {
  /** Waits ms or until woken (by a new target or halt). Tests record the delays. */
  sleep?: (ms: number) => Promise<void>;
  /** After every step (the kernel reports meminfo then). */
  onStep?: () => void;
}

export class BalloonDriver {
  private targetPages: number | null = null;
  private state: BalloonState = 'done';
  /** Delay before the next retry, in units of BALLOON_BASE_DELAY_MS (Linux's schedule_delay in s). */
  private scheduleDelay = 1;
  private retryCount = 1;
  private wakeUp: (() => void) | null = null;
  private readonly batch = new Int32Array(BALLOON_BATCH_PAGES);
  /** Figures for reports and tests. */
  readonly counters = { steps: 0, inflatedPages: 0, deflatedPages: 0, eagain: 0, canceled: 0 };

  constructor(
    private readonly os: GuestOs,
    private readonly list: BalloonList,
    private readonly gate: RunGate,
    private readonly hooks: BalloonHooks = {},
  ) {}

  /** Pages the kernel keeps free for itself: the balloon will not take them. */
  get reservePages(): number {
    return Math.min(64, Math.ceil(this.os.maxPages / 256));
  }

  /** Populated pages as the guest sees it. */
  get currentPages(): number {
    return this.os.maxPages - this.list.length;
  }

  get target(): number | null {
    return this.targetPages;
  }

  get status(): BalloonState {
    return this.state;
  }

  /** From the memory/target watch. */
  setTargetKiB(kib: number): void {
    if (!Number.isFinite(kib) || kib < 0) return;
    const pages = Math.min(this.os.maxPages, kibToPages(kib));
    if (pages === this.targetPages) return;
    this.targetPages = pages;
    this.wake();
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    if (w) w();
  }

  /** The worker; ends when the guest halts. */
  async run(): Promise<void> {
    const { gate } = this;
    while (!gate.halted) {
      const thawed = gate.whenThawed();
      if (thawed) {
        await thawed;
        continue;
      }
      if (this.state === 'done' && this.credit() !== 0) {
        await this.stepOnce();
        await yieldToEventLoop();
        continue;
      }
      // At target, waiting to retry (EAGAIN) or given up (ECANCELED): sleep until the delay is
      // over or the target changes, then try a step if there is anything to do.
      const ms = this.state === 'eagain' ? this.scheduleDelay * BALLOON_BASE_DELAY_MS : BALLOON_CANCELED_WAIT_MS;
      await this.waitOrWake(ms);
      if (gate.running && this.credit() !== 0) await this.stepOnce();
    }
  }

  /** target - current, in pages; 0 before the first target is known. */
  credit(): number {
    return this.targetPages === null ? 0 : this.targetPages - this.currentPages;
  }

  private async stepOnce(): Promise<void> {
    const p = this.os.platform.checkpoint();
    if (p) await p;
    if (!this.gate.running) return;
    const credit = this.credit();
    if (credit === 0) return;
    const result = credit > 0 ? this.deflate(Math.min(credit, BALLOON_BATCH_PAGES)) : this.inflate(Math.min(-credit, BALLOON_BATCH_PAGES));
    this.counters.steps++;
    this.state = this.updateSchedule(result);
    this.hooks.onStep?.();
  }

  /** Gives up to `want` free pages back to the hypervisor. */
  private inflate(want: number): BalloonState {
    const { allocator, platform } = this.os;
    const available = Math.max(0, allocator.freePages - this.reservePages);
    const n = allocator.allocMany(Math.min(want, available), this.batch);
    if (n > 0) {
      const pfns: number[] = new Array(n);
      for (let i = 0; i < n; i++) {
        pfns[i] = this.batch[i];
        this.list.push(this.batch[i]);
      }
      try {
        platform.decreaseReservation(pfns);
      } catch (err) {
        for (let i = 0; i < n; i++) this.list.pop();
        for (let i = 0; i < n; i++) allocator.free(this.batch[i]);
        platform.log(`balloon: decrease_reservation of ${n} pages failed: ${(err as Error).message}`);
        return 'eagain';
      }
      this.counters.inflatedPages += n;
    }
    return n === want ? 'done' : 'eagain';
  }

  /** Takes up to `want` pages back from the hypervisor. */
  private deflate(want: number): BalloonState {
    const { allocator, platform, mem } = this.os;
    const n = Math.min(want, this.list.length);
    if (n === 0) return 'eagain';
    const pfns: number[] = new Array(n);
    for (let i = 0; i < n; i++) pfns[i] = this.list.pop();
    let ok = true;
    try {
      platform.populatePhysmap(pfns);
    } catch (err) {
      ok = false;
      platform.log(`balloon: populate_physmap of ${n} pages failed: ${(err as Error).message}`);
    }
    let got = 0;
    for (let i = 0; i < n; i++) {
      // After a failure some pages may have been populated: those are ours again, the rest stay ballooned.
      if (ok || mem.isPopulated(pfns[i])) {
        allocator.free(pfns[i]);
        got++;
      } else {
        this.list.push(pfns[i]);
      }
    }
    this.counters.deflatedPages += got;
    return got === want ? 'done' : 'eagain';
  }

  /** Linux's update_schedule(). */
  private updateSchedule(result: BalloonState): BalloonState {
    if (result === 'done') {
      this.scheduleDelay = 1;
      this.retryCount = 1;
      return 'done';
    }
    this.counters.eagain++;
    this.retryCount++;
    if (this.retryCount > BALLOON_MAX_RETRY_COUNT) {
      this.scheduleDelay = 1;
      this.retryCount = 1;
      this.counters.canceled++;
      this.os.platform.log(`balloon: giving up at ${this.currentPages} pages (target ${this.targetPages}) until the target changes`);
      return 'ecanceled';
    }
    this.scheduleDelay = Math.min(this.scheduleDelay * 2, BALLOON_MAX_DELAY_MS / BALLOON_BASE_DELAY_MS);
    return 'eagain';
  }

  private waitOrWake(ms: number): Promise<void> {
    const registerWake = (wake: () => void): void => {
      this.wakeUp = wake;
    };
    const sleep = this.hooks.sleep ? this.hooks.sleep(ms) : this.gate.sleep(ms, registerWake);
    if (!this.hooks.sleep) return sleep;
    // An injected sleep cannot be cut short: race it against a wake-up.
    return new Promise<void>((resolve) => {
      this.wakeUp = resolve;
      void sleep.then(resolve);
    });
  }
}
