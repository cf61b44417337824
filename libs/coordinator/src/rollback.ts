// Rolling back a migration that failed or was cancelled before the commit point: the domain goes
// back to running on the source exactly as before. Everything is read from the record (which
// phases were entered, which domains exist), so the same code finishes a rollback a previous
// coordinator started. Every step is idempotent and fenced; resuming the source is retried until
// it happens (the domain must never end up running nowhere), the others a few times. What decides
// the outcome is the domain: the receiving domain gone, log-dirty off, the source running. Steps
// that leave only tidiness behind (a session not closed, a balloon not restored, a fence not
// released) become warnings on the record.

import { DomainState, FailureCode, MigrationOutcome, MigrationPhase, ShutdownReason, type Migration, type MigrationFailure as FailureRecord } from '@ferry/proto';
import { CoordinatorStopping, MigrationFailure, describeError, isNotFound } from './failures';
import { unaryCall } from './grpc-unary';
import { phaseName } from './phases';
import type { RunContext, StepOptions, Steps } from './steps';

export type RollbackCause = { kind: 'failure'; failure: MigrationFailure } | { kind: 'cancel'; reason: string };

/** True once the migration had entered `phase` (so its side effects may exist). */
export function reached(m: Migration, phase: MigrationPhase): boolean {
  return m.phaseTransitions.some((t) => t.phase === phase);
}

const STEP: StepOptions = { failure: FailureCode.FAILURE_CODE_ROLLBACK_FAILED, cancellable: false };
const ESSENTIAL: StepOptions = { ...STEP, persistent: true };

/** Rolls back and ends the migration (ROLLED_BACK, CANCELLED, or FAILED when undoing failed). */
export async function rollBack(ctx: RunContext, steps: Steps, cause: RollbackCause | undefined): Promise<Migration> {
  const { journal, fence, timing } = ctx;
  // A rollback out of stop-and-copy: what was held back for the downtime window goes out now.
  journal.releasePublishing();
  let m = journal.current;
  if (m.phase !== MigrationPhase.MIGRATION_PHASE_ROLLING_BACK) {
    const failure = failureRecord(m.phase, cause);
    m = await journal.enterPhase(MigrationPhase.MIGRATION_PHASE_ROLLING_BACK, failure.reason, (r) => {
      r.failure = failure;
    });
  }
  ctx.trace.enterPhase(MigrationPhase.MIGRATION_PHASE_ROLLING_BACK);
  const cancelled = m.failure?.code === FailureCode.FAILURE_CODE_CANCELLED;
  const problems: string[] = [];
  const warnings: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>, essential = true): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof CoordinatorStopping) throw err;
      (essential ? problems : warnings).push(`${what}: ${describeError(err)}`);
      ctx.logger.error({ step: what, err: describeError(err), essential }, 'rollback step failed');
    }
  };
  const deadline = { deadlineMs: timing.callDeadlineMs };

  // The receiving domain first: it is paused and must not outlive the migration. A compacted
  // migration prepares the target during COMPACTING already.
  if (reached(m, MigrationPhase.MIGRATION_PHASE_COMPACTING) || reached(m, MigrationPhase.MIGRATION_PHASE_PREPARING_TARGET)) {
    await attempt(`destroy the receiving domain on ${m.targetHost}`, async () => {
      const domid = m.targetDomid || (await findTargetDomain(ctx, steps, m));
      if (!domid) return;
      await steps
        .call('DestroyDomain', m.targetHost, STEP, (h) => unaryCall(h.agent.destroyDomain, h.agent, { fence, domid }, deadline))
        .catch((err) => {
          if (!isNotFound(err)) throw err;
        });
    });
    await attempt(
      `close the receive session on ${m.targetHost}`,
      () => steps.call('CloseSession', m.targetHost, STEP, (h) => unaryCall(h.streamer.closeSession, h.streamer, { fence }, deadline)),
      false,
    );
  }
  if (reached(m, MigrationPhase.MIGRATION_PHASE_PRECOPY)) {
    await attempt(
      `close the send session on ${m.sourceHost}`,
      () => steps.call('CloseSession', m.sourceHost, STEP, (h) => unaryCall(h.streamer.closeSession, h.streamer, { fence }, deadline)),
      false,
    );
    await attempt(`stop log-dirty tracking on ${m.sourceHost}`, () =>
      steps.call('StopTracking', m.sourceHost, STEP, (h) => unaryCall(h.tracker.stopTracking, h.tracker, { fence }, deadline)),
    );
  }
  if (m.sourceDomid !== 0) {
    await attempt(`resume the domain on ${m.sourceHost}`, () => resumeSource(ctx, steps, m));
  }
  if (reached(m, MigrationPhase.MIGRATION_PHASE_COMPACTING)) {
    await attempt(
      `restore the balloon on ${m.sourceHost}`,
      () =>
        steps.call('Restore', m.sourceHost, STEP, (h) =>
          unaryCall(h.balloon.restore, h.balloon, { fence, domid: m.sourceDomid, targetPages: m.compaction?.originalTargetPages ?? 0n }, deadline),
        ),
      false,
    );
  }
  if (m.sourceDomid !== 0) {
    await attempt(
      `release the domain on ${m.sourceHost}`,
      () => steps.call('ReleaseDomain', m.sourceHost, STEP, (h) => unaryCall(h.agent.releaseDomain, h.agent, { fence, domid: m.sourceDomid }, deadline)),
      false,
    );
  }

  if (problems.length > 0) {
    const reason = `rollback incomplete (${problems.join('; ')}); cause: ${m.failure?.reason ?? 'unknown'}`;
    return journal.finish(MigrationOutcome.MIGRATION_OUTCOME_FAILED, 'rollback incomplete', (r) => {
      r.failure = { ...(r.failure ?? emptyFailure(r.phase)), code: FailureCode.FAILURE_CODE_ROLLBACK_FAILED, reason };
      r.warnings.push(...problems, ...warnings);
    });
  }
  const record = (r: Migration) => void r.warnings.push(...warnings);
  return cancelled
    ? journal.finish(MigrationOutcome.MIGRATION_OUTCOME_CANCELLED, 'cancelled and rolled back', record)
    : journal.finish(MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK, 'rolled back', record);
}

/** The source domain runs again: resumed if it was suspended, unpaused if paused. */
async function resumeSource(ctx: RunContext, steps: Steps, m: Migration): Promise<void> {
  const deadline = { deadlineMs: ctx.timing.callDeadlineMs };
  const { fence } = ctx;
  const domid = m.sourceDomid;
  let domain;
  try {
    domain = await steps.call('GetDomain', m.sourceHost, ESSENTIAL, (h) =>
      unaryCall(h.agent.getDomain, h.agent, { selector: { $case: 'domid', domid } }, deadline),
    );
  } catch (err) {
    if (isNotFound(err)) throw new MigrationFailure(FailureCode.FAILURE_CODE_DOMAIN_LOST, `domain ${domid} is gone from ${m.sourceHost}`, m.sourceHost);
    throw err;
  }
  const d = domain.domain;
  if (d?.state === DomainState.DOMAIN_STATE_SHUTDOWN && d.shutdownReason === ShutdownReason.SHUTDOWN_REASON_SUSPEND) {
    await steps.call('ResumeDomain', m.sourceHost, ESSENTIAL, (h) => unaryCall(h.agent.resumeDomain, h.agent, { fence, domid }, deadline));
  } else if (d?.state === DomainState.DOMAIN_STATE_PAUSED) {
    await steps.call('UnpauseDomain', m.sourceHost, ESSENTIAL, (h) => unaryCall(h.agent.unpauseDomain, h.agent, { fence, domid }, deadline));
  } else if (d?.state === DomainState.DOMAIN_STATE_SHUTDOWN) {
    throw new MigrationFailure(FailureCode.FAILURE_CODE_DOMAIN_LOST, `domain ${domid} on ${m.sourceHost} shut down on its own (${ShutdownReason[d.shutdownReason]})`, m.sourceHost);
  }
}

/** The receiving domain when the record has no domid yet (a crash right after creating it). */
async function findTargetDomain(ctx: RunContext, steps: Steps, m: Migration): Promise<number> {
  try {
    const res = await steps.call('GetDomain', m.targetHost, STEP, (h) =>
      unaryCall(h.agent.getDomain, h.agent, { selector: { $case: 'name', name: m.domainName } }, { deadlineMs: ctx.timing.callDeadlineMs }),
    );
    // Only a domain this migration created (it holds our fence) is ours to destroy.
    return res.domain && res.domain.migrationId === m.id ? res.domain.domid : 0;
  } catch (err) {
    if (isNotFound(err)) return 0;
    throw err;
  }
}

function emptyFailure(phase: MigrationPhase): FailureRecord {
  return { code: FailureCode.FAILURE_CODE_UNSPECIFIED, reason: '', phase, host: '', preflightReasons: [] };
}

/** The failure recorded when a rollback starts. */
export function failureRecord(phase: MigrationPhase, cause: RollbackCause | undefined): FailureRecord {
  if (!cause) {
    return {
      code: FailureCode.FAILURE_CODE_INTERNAL,
      reason: `the coordinator running the migration stopped during ${phaseName(phase)}`,
      phase,
      host: '',
      preflightReasons: [],
    };
  }
  if (cause.kind === 'cancel') {
    return { code: FailureCode.FAILURE_CODE_CANCELLED, reason: cause.reason, phase, host: '', preflightReasons: [] };
  }
  const f = cause.failure;
  return { code: f.code, reason: f.message, phase, host: f.host, preflightReasons: f.preflightReasons };
}
