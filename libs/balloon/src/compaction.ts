// Compacting a guest before pre-copy (the thesis' "memory tight compression"): with the balloon
// frozen for the migration, set memory/target to the guest's used pages plus headroom (the pure
// compactionTarget of @ferry/policy), wait for the balloon to settle, and report how far it got.
// Falling short is a result with a shortfall, never an exception; when it falls short the balloon
// is held where it got to, so it stops moving before log-dirty starts (cancelling cleanly).

import { setTimeout as sleep } from 'node:timers/promises';
import { kibToPages, pagesToKiB, type HypervisorDriver } from '@ferry/hypervisor';
import { compactionTarget, DEFAULT_COMPACTION } from '@ferry/policy';
import { CompactionShortfall, type CompactionResult } from '@ferry/proto';
import type { BalloonFreeze } from './balloon-freeze';
import { readGuestMemory, type GuestMemoryFigures } from './guest-memory';
import { waitForBalloon, type SettleOutcome } from './settle';

export interface CompactionSettings {
  /** Headroom above used pages, as a fraction of them. */
  headroomFraction: number;
  settleTimeoutMs: number;
  /** The balloon has stopped when no page was released for this long. */
  noProgressMs: number;
  /** Reached = populated within this many pages above the target (a balloon batch). */
  tolerancePages: number;
  /** Never compact below this many pages. */
  floorPages: number;
  pollMs: number;
  /** How long to wait for a guest that has not reported its free memory yet (a fresh boot). */
  freeReportWaitMs: number;
}

export const DEFAULT_COMPACTION_SETTINGS: CompactionSettings = {
  headroomFraction: DEFAULT_COMPACTION.headroom,
  settleTimeoutMs: 30_000,
  // Longer than the emulated balloon driver's back-off before it gives up (0.5 + 1 + 2 s).
  noProgressMs: 5_000,
  tolerancePages: 512,
  floorPages: DEFAULT_COMPACTION.floorPages,
  pollMs: 100,
  freeReportWaitMs: 3_000,
};

export interface CompactionOutcome {
  result: CompactionResult;
  /** The figures when compaction ended. */
  after: GuestMemoryFigures;
  /** True when a Restore/Unfreeze cancelled the wait. */
  cancelled: boolean;
}

export async function compactGuest(
  driver: HypervisorDriver,
  freeze: BalloonFreeze,
  settings: CompactionSettings,
  signal: AbortSignal,
): Promise<CompactionOutcome> {
  await freeze.armed;
  const domid = freeze.domid;
  const originalTargetPages = BigInt(kibToPages(freeze.originalTargetKiB ?? 0));
  let before = await readGuestMemory(driver, domid);
  if (before.guestFreePages === null) before = await waitForFreeReport(driver, domid, before, settings, signal);

  const base = {
    originalTargetPages,
    populatedPagesBefore: BigInt(before.populatedPages),
  };
  const shortOf = async (
    shortfall: CompactionShortfall,
    reason: string,
    targetPages: number,
    elapsedMs: number,
    cancelled = false,
  ): Promise<CompactionOutcome> => {
    const after = await readGuestMemory(driver, domid);
    return {
      result: {
        ...base,
        reached: false,
        releasedPages: BigInt(Math.max(0, before.populatedPages - after.populatedPages)),
        targetPages: BigInt(targetPages),
        populatedPagesAfter: BigInt(after.populatedPages),
        elapsedMs: BigInt(elapsedMs),
        shortfall,
        reason,
      },
      after,
      cancelled,
    };
  };

  if (before.guestFreePages === null) {
    return shortOf(
      CompactionShortfall.COMPACTION_SHORTFALL_FREE_MEMORY_UNKNOWN,
      `domain ${domid} does not report its free memory (data/meminfo_free); no safe target can be computed`,
      before.populatedPages,
      0,
      signal.aborted,
    );
  }
  const plan = compactionTarget(
    { populatedPages: before.populatedPages, freePages: before.guestFreePages, targetPages: before.targetPages },
    { headroom: settings.headroomFraction, floorPages: settings.floorPages },
  );
  if (plan.skipReason) {
    const why =
      plan.skipReason === 'no-free-memory'
        ? `domain ${domid} reports no free memory`
        : `domain ${domid}'s ${before.guestFreePages} free pages are within the headroom (${Math.round(settings.headroomFraction * 100)}% of used, at least ${settings.floorPages} pages)`;
    return shortOf(CompactionShortfall.COMPACTION_SHORTFALL_NOTHING_TO_RELEASE, `nothing to release: ${why}`, plan.targetPages, 0);
  }

  if (signal.aborted) {
    return shortOf(CompactionShortfall.COMPACTION_SHORTFALL_NO_PROGRESS, 'cancelled by the migration before the target was set', plan.targetPages, 0, true);
  }
  const startedAt = Date.now();
  await freeze.hold(pagesToKiB(plan.targetPages));
  // Small compactions get a proportionally small tolerance, so "reached" means the work was done.
  const tolerancePages = Math.min(settings.tolerancePages, Math.floor(plan.expectedReleasePages / 10));
  const settled = await waitForBalloon(driver, domid, startedAt, {
    startPages: before.populatedPages,
    targetPages: plan.targetPages,
    tolerancePages,
    timeoutMs: settings.settleTimeoutMs,
    noProgressMs: settings.noProgressMs,
    pollMs: settings.pollMs,
    signal,
  });
  if (settled.outcome === 'reached') {
    const after = await readGuestMemory(driver, domid);
    return {
      result: {
        ...base,
        reached: true,
        releasedPages: BigInt(Math.max(0, before.populatedPages - after.populatedPages)),
        targetPages: BigInt(plan.targetPages),
        populatedPagesAfter: BigInt(after.populatedPages),
        elapsedMs: BigInt(settled.elapsedMs),
        shortfall: CompactionShortfall.COMPACTION_SHORTFALL_UNSPECIFIED,
        reason: '',
      },
      after,
      cancelled: false,
    };
  }
  // Stop the balloon where it is: a guest still chasing the old target would free pages during
  // pre-copy. (A page or two released between the read and the write is deflated back.)
  const now = await readGuestMemory(driver, domid);
  await freeze.hold(pagesToKiB(now.populatedPages));
  const { shortfall, reason } = explain(settled.outcome, settled.populatedPages, plan.targetPages, settings);
  return shortOf(shortfall, reason, plan.targetPages, settled.elapsedMs, settled.outcome === 'cancelled');
}

function explain(
  outcome: Exclude<SettleOutcome, 'reached'>,
  pages: number,
  target: number,
  settings: CompactionSettings,
): { shortfall: CompactionShortfall; reason: string } {
  switch (outcome) {
    case 'timeout':
      return {
        shortfall: CompactionShortfall.COMPACTION_SHORTFALL_TIMEOUT,
        reason: `settle timeout of ${settings.settleTimeoutMs} ms: ${pages} pages populated, target ${target}`,
      };
    case 'no-progress':
      return {
        shortfall: CompactionShortfall.COMPACTION_SHORTFALL_NO_PROGRESS,
        reason: `the balloon stopped at ${pages} pages (target ${target}): no page released for ${settings.noProgressMs} ms`,
      };
    case 'no-balloon-driver':
      return {
        shortfall: CompactionShortfall.COMPACTION_SHORTFALL_NO_BALLOON_DRIVER,
        reason: `the guest released no page within ${settings.noProgressMs} ms of memory/target being set to ${target} pages: no working balloon driver`,
      };
    case 'cancelled':
      return {
        shortfall: CompactionShortfall.COMPACTION_SHORTFALL_NO_PROGRESS,
        reason: `cancelled by the migration at ${pages} pages (target ${target})`,
      };
  }
}

/** Polls data/meminfo_free for a guest that has not reported yet (it reports every second). */
async function waitForFreeReport(
  driver: HypervisorDriver,
  domid: number,
  figures: GuestMemoryFigures,
  settings: CompactionSettings,
  signal: AbortSignal,
): Promise<GuestMemoryFigures> {
  const deadline = Date.now() + settings.freeReportWaitMs;
  let current = figures;
  while (current.guestFreePages === null && Date.now() < deadline && !signal.aborted) {
    await sleep(settings.pollMs, undefined, { signal }).catch(() => {});
    current = await readGuestMemory(driver, domid);
  }
  return current;
}
