// After the commit point the migration only moves forward: unpause the domain on the target
// (downtime ends when that returns), destroy the source, then tidy up (tracking, sessions, the
// target's balloon, the fence; both hosts at once). RESUMING_TARGET is recorded once the unpause
// has returned, not before it: COMMITTED already says "roll forward" to any coordinator that takes
// over, so the guest need not stay stopped for one more record write, and nothing else runs in
// this process while the unpause is under way (the events held since the suspend are published
// after it). Everything comes from the record, so a coordinator that takes a committed migration
// over finishes it with the same code.
//
// Unpausing the target and destroying the source are retried until they happen. One exception
// keeps the domain from running nowhere: if the target answers, again and again, that it cannot
// unpause (its domain is gone), the source (suspended, intact) is resumed instead and the
// migration ends FAILED with RESUME_FAILED.

import { FailureCode, MigrationOutcome, MigrationPhase, type DowntimeParts, type Migration } from '@ferry/proto';
import { CoordinatorStopping, MigrationFailure, describeError, isNotFound } from './failures';
import { unaryCall } from './grpc-unary';
import { reached } from './rollback';
import type { RunContext, StepOptions, Steps } from './steps';

const TIDY: StepOptions = { failure: FailureCode.FAILURE_CODE_INTERNAL, cancellable: false };
const ESSENTIAL: StepOptions = { ...TIDY, persistent: true };
/** Refusals (not unreachability) of the unpause tolerated before falling back to the source. */
const UNPAUSE_REFUSALS = 5;

export interface RollForwardTiming {
  /** When the suspend started, if this process saw it (else the STOP_AND_COPY entry is used). */
  suspendStartedAt?: number;
  /** The final round's call, if this process made it: then the downtime is recorded in parts. */
  finalCall?: { startedAt: number; endedAt: number };
  /** How long the memory digests took (verify), if this process ran them. */
  verifyMs?: number;
}

export async function rollForward(ctx: RunContext, steps: Steps, timing: RollForwardTiming = {}): Promise<Migration> {
  const { journal } = ctx;
  const leftovers: string[] = [];
  let m = journal.current;
  if (m.phase === MigrationPhase.MIGRATION_PHASE_COMMITTED || m.phase === MigrationPhase.MIGRATION_PHASE_RESUMING_TARGET) {
    ctx.trace.enterPhase(MigrationPhase.MIGRATION_PHASE_RESUMING_TARGET);
    let unpaused: boolean;
    const unpauseStartedAt = Date.now();
    try {
      unpaused = await unpauseTarget(ctx, steps, m);
    } finally {
      journal.releasePublishing();
    }
    const runningAt = Date.now();
    if (m.phase === MigrationPhase.MIGRATION_PHASE_COMMITTED) {
      m = await journal.enterPhase(MigrationPhase.MIGRATION_PHASE_RESUMING_TARGET, unpaused ? 'committed; running on the target' : 'committed; the target cannot run the domain');
    }
    if (!unpaused) return fallBackToSource(ctx, steps, m, leftovers);
    const downtimeStart = timing.suspendStartedAt ?? stopAndCopyStart(m);
    const downtimeMs = downtimeStart ? BigInt(Math.max(0, runningAt - downtimeStart)) : 0n;
    const downtimeParts = downtimePartsOf(timing, unpauseStartedAt, runningAt);
    m = await journal.enterPhase(MigrationPhase.MIGRATION_PHASE_CLEANING_UP, 'running on the target', (r) => {
      if (!r.totals) return;
      r.totals.downtimeMs = downtimeMs;
      if (downtimeParts) r.totals.downtimeParts = downtimeParts;
    });
  }
  ctx.trace.enterPhase(MigrationPhase.MIGRATION_PHASE_CLEANING_UP);
  await cleanUp(ctx, steps, m, leftovers);
  return journal.finish(MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, 'migrated', (r) => r.warnings.push(...leftovers));
}

/**
 * The window's consecutive parts (suspend, final round, verify, commit, resume), from the times this
 * process took at its call boundaries, so they add up to the downtime; undefined when this process
 * did not see the whole window (it took the migration over).
 */
export function downtimePartsOf(timing: RollForwardTiming, unpauseStartedAt: number, runningAt: number): DowntimeParts | undefined {
  const { suspendStartedAt, finalCall } = timing;
  if (suspendStartedAt === undefined || !finalCall) return undefined;
  const ms = (from: number, to: number) => BigInt(Math.max(0, to - from));
  const verifyMs = BigInt(Math.max(0, Math.min(timing.verifyMs ?? 0, unpauseStartedAt - finalCall.endedAt)));
  return {
    suspendMs: ms(suspendStartedAt, finalCall.startedAt),
    finalRoundMs: ms(finalCall.startedAt, finalCall.endedAt),
    verifyMs,
    commitMs: ms(finalCall.endedAt, unpauseStartedAt) - verifyMs,
    resumeMs: ms(unpauseStartedAt, runningAt),
  };
}

/** True once the target runs the domain; false when the target keeps refusing. */
async function unpauseTarget(ctx: RunContext, steps: Steps, m: Migration): Promise<boolean> {
  const { fence } = ctx;
  for (let refusals = 1; ; refusals++) {
    try {
      await steps.call('UnpauseDomain', m.targetHost, ESSENTIAL, (h) =>
        unaryCall(h.agent.unpauseDomain, h.agent, { fence, domid: m.targetDomid }, { deadlineMs: ctx.timing.callDeadlineMs }),
      );
      return true;
    } catch (err) {
      if (err instanceof CoordinatorStopping) throw err;
      ctx.logger.error({ err: describeError(err), refusals }, 'the target refused to unpause the domain');
      if (refusals >= UNPAUSE_REFUSALS) return false;
      await steps.sleep(ctx.timing.maxBackoffMs);
    }
  }
}

async function cleanUp(ctx: RunContext, steps: Steps, m: Migration, leftovers: string[]): Promise<void> {
  const { fence } = ctx;
  const tidy = tidier(ctx, leftovers);
  const deadline = { deadlineMs: ctx.timing.callDeadlineMs };
  // The two hosts are tidied at the same time: nothing on one waits for the other, and a
  // migration is over only when both are done.
  const source = async () => {
    // The source domain goes first: after this the domain exists only on the target.
    await steps
      .call('DestroyDomain', m.sourceHost, ESSENTIAL, (h) => unaryCall(h.agent.destroyDomain, h.agent, { fence, domid: m.sourceDomid }, deadline))
      .catch((err) => {
        if (!isNotFound(err)) throw err;
      });
    await tidy(`stop tracking on ${m.sourceHost}`, () =>
      steps.call('StopTracking', m.sourceHost, TIDY, (h) => unaryCall(h.tracker.stopTracking, h.tracker, { fence }, deadline)),
    );
    await tidy(`close the send session on ${m.sourceHost}`, () =>
      steps.call('CloseSession', m.sourceHost, TIDY, (h) => unaryCall(h.streamer.closeSession, h.streamer, { fence }, deadline)),
    );
  };
  const target = async () => {
    await tidy(`close the receive session on ${m.targetHost}`, () =>
      steps.call('CloseSession', m.targetHost, TIDY, (h) => unaryCall(h.streamer.closeSession, h.streamer, { fence }, deadline)),
    );
    if (m.compaction) {
      // Give the guest back the memory compaction took (the balloon deflates on the target).
      await tidy(`restore the balloon on ${m.targetHost}`, () =>
        steps.call('Restore', m.targetHost, TIDY, (h) =>
          unaryCall(h.balloon.restore, h.balloon, { fence, domid: m.targetDomid, targetPages: m.compaction?.originalTargetPages ?? 0n }, deadline),
        ),
      );
    }
  };
  // Both chains run to their end (allSettled) before an error is passed on: a chain is never cut
  // off half-way by the other's failure.
  const results = await Promise.allSettled([source(), target()]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  // Released last, once the source copy is gone: from then on the domain is the target's alone.
  await tidy(`release the domain on ${m.targetHost}`, () =>
    steps.call('ReleaseDomain', m.targetHost, TIDY, (h) => unaryCall(h.agent.releaseDomain, h.agent, { fence, domid: m.targetDomid }, deadline)),
  );
}

/** The target cannot run the domain: resume the source, remove the target's copy, end FAILED. */
async function fallBackToSource(ctx: RunContext, steps: Steps, m: Migration, leftovers: string[]): Promise<Migration> {
  const { fence } = ctx;
  const tidy = tidier(ctx, leftovers);
  const deadline = { deadlineMs: ctx.timing.callDeadlineMs };
  await steps.call('ResumeDomain', m.sourceHost, ESSENTIAL, (h) => unaryCall(h.agent.resumeDomain, h.agent, { fence, domid: m.sourceDomid }, deadline));
  await tidy(`destroy the target's copy on ${m.targetHost}`, () =>
    steps.call('DestroyDomain', m.targetHost, TIDY, (h) => unaryCall(h.agent.destroyDomain, h.agent, { fence, domid: m.targetDomid }, deadline)),
  );
  await tidy(`stop tracking on ${m.sourceHost}`, () =>
    steps.call('StopTracking', m.sourceHost, TIDY, (h) => unaryCall(h.tracker.stopTracking, h.tracker, { fence }, deadline)),
  );
  if (reached(m, MigrationPhase.MIGRATION_PHASE_COMPACTING)) {
    await tidy(`restore the balloon on ${m.sourceHost}`, () =>
      steps.call('Restore', m.sourceHost, TIDY, (h) =>
        unaryCall(h.balloon.restore, h.balloon, { fence, domid: m.sourceDomid, targetPages: m.compaction?.originalTargetPages ?? 0n }, deadline),
      ),
    );
  }
  await tidy(`release the domain on ${m.sourceHost}`, () =>
    steps.call('ReleaseDomain', m.sourceHost, TIDY, (h) => unaryCall(h.agent.releaseDomain, h.agent, { fence, domid: m.sourceDomid }, deadline)),
  );
  const failure = new MigrationFailure(FailureCode.FAILURE_CODE_RESUME_FAILED, `the target ${m.targetHost} could not unpause the domain; it was resumed on the source ${m.sourceHost}`, m.targetHost);
  return ctx.journal.finish(MigrationOutcome.MIGRATION_OUTCOME_FAILED, failure.message, (r) => {
    r.failure = { code: failure.code, reason: failure.message, phase: MigrationPhase.MIGRATION_PHASE_RESUMING_TARGET, host: failure.host, preflightReasons: [] };
    r.warnings.push(...leftovers);
  });
}

/** Runs a tidy-up step; a failure is noted in `leftovers` (a warning) and does not stop the rest. */
function tidier(ctx: RunContext, leftovers: string[]) {
  return async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof CoordinatorStopping) throw err;
      leftovers.push(`${what}: ${describeError(err)}`);
      ctx.logger.warn({ step: what, err: describeError(err) }, 'clean-up step failed; left for an operator');
    }
  };
}

function stopAndCopyStart(m: Migration): number | undefined {
  const t = [...m.phaseTransitions].reverse().find((p) => p.phase === MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY);
  return t?.enteredAt?.getTime();
}
