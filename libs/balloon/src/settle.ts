// Waiting for a balloon to settle at its target, bounded three ways: populated memory reaches the
// target (within a tolerance), the balloon stops making progress, or the settle timeout fires.
// Like libxl_wait_for_memory_target it polls the domain's populated pages, and like XAPI's
// ballooning timeout (CA-259579) giving up is an outcome, not an exception: the caller decides.

import { setTimeout as sleep } from 'node:timers/promises';
import type { HypervisorDriver } from '@ferry/hypervisor';

const FIRST_POLL_MS = 5;

export type SettleOutcome = 'reached' | 'timeout' | 'no-progress' | 'no-balloon-driver' | 'cancelled';

export interface SettleOptions {
  /** Populated pages when the target was written. */
  startPages: number;
  targetPages: number;
  /** Populated pages at most this far above the target count as reached. */
  tolerancePages: number;
  timeoutMs: number;
  /** Give up when no page has been released for this long. */
  noProgressMs: number;
  /** How often populated pages are read, at most (the first polls come sooner). */
  pollMs: number;
  /** Cancels the wait (a Restore or Unfreeze of the migration, or shutdown). */
  signal?: AbortSignal;
}

export interface SettleResult {
  outcome: SettleOutcome;
  populatedPages: number;
  elapsedMs: number;
}

/** Waits from `startedAt` (when the target was written) until the balloon settles or gives up. */
export async function waitForBalloon(
  driver: HypervisorDriver,
  domid: number,
  startedAt: number,
  opts: SettleOptions,
): Promise<SettleResult> {
  let lowest = opts.startPages;
  let lastProgressAt = startedAt;
  let moved = false;
  // Polls start short and back off to pollMs: a balloon often settles within tens of
  // milliseconds, and a fixed poll of 100 ms would add most of one poll to every compaction.
  let interval = Math.min(FIRST_POLL_MS, opts.pollMs);
  for (;;) {
    const pages = (await driver.domainInfo(domid)).nrPages;
    const now = Date.now();
    const result = (outcome: SettleOutcome): SettleResult => ({ outcome, populatedPages: pages, elapsedMs: now - startedAt });
    if (pages < lowest) {
      moved = true;
      lastProgressAt = now;
      lowest = pages;
    }
    if (pages <= opts.targetPages + opts.tolerancePages) return result('reached');
    if (opts.signal?.aborted) return result('cancelled');
    if (now - startedAt >= opts.timeoutMs) return result('timeout');
    if (now - lastProgressAt >= opts.noProgressMs) return result(moved ? 'no-progress' : 'no-balloon-driver');
    const untilDeadline = Math.min(opts.timeoutMs - (now - startedAt), opts.noProgressMs - (now - lastProgressAt));
    try {
      await sleep(Math.max(1, Math.min(interval, untilDeadline)), undefined, { signal: opts.signal });
      interval = Math.min(interval * 2, opts.pollMs);
    } catch {
      // Aborted: the next pass reports 'cancelled' (after one last look at the figures).
    }
  }
}
