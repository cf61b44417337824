// One migration, phase by phase (DESIGN.md): PREFLIGHT → COMPACTING (when compaction is on) →
// PREPARING_TARGET → PRECOPY → STOP_AND_COPY (the final round carries the state) → VERIFYING
// (with verify) → COMMITTED → RESUMING_TARGET → CLEANING_UP → DONE. Every transition is written to the record before the
// next step runs. Before the commit point a failure or a cancel rolls back (rollback.ts); from it
// on the migration rolls forward (roll-forward.ts). A failure during pre-flight ends the
// migration at once: nothing was touched yet.

import { randomBytes } from 'node:crypto';
import {
  CompactionShortfall,
  CompactionTimeoutAction,
  FailureCode,
  MigrationOutcome,
  MigrationPhase,
  MigrationRole,
  PreflightCode,
  CheckMigrationRequest,
  type CheckMigrationResponse,
  type Domain,
  type Migration,
  type PreflightReason,
} from '@ferry/proto';
import { MigrationRecordConflict } from '@ferry/cluster';
import { memoryPagesOf } from './domain-memory';
import type { JournalWrite } from './journal';
import { CoordinatorStopping, MigrationCancelled, MigrationFailure, describeError, grpcStatus } from './failures';
import { unaryCall } from './grpc-unary';
import { recoveryPlan } from './phases';
import { PrecopyRun } from './precopy-executor';
import { failureRecord, rollBack, type RollbackCause } from './rollback';
import { rollForward, type RollForwardTiming } from './roll-forward';
import { Steps, type RunContext } from './steps';
import { status } from '@grpc/grpc-js';

/** Errors that stop driving a migration without touching its record (another owner, shutdown). */
export function leavesRecordAlone(err: unknown): boolean {
  return err instanceof CoordinatorStopping || err instanceof MigrationRecordConflict;
}

export class MigrationRun {
  private readonly steps: Steps;
  private peerEndpoint = '';
  private token = '';
  /** What this process timed of the downtime window, for the record's downtime parts. */
  private window: RollForwardTiming = {};
  private stateBytes = 0n;
  /** The final round's record, written with the next phase change (inside the downtime window). */
  private finalRound: JournalWrite | undefined;
  private verified = false;

  constructor(private readonly ctx: RunContext) {
    this.steps = new Steps(ctx);
  }

  /** Drives an admitted migration (phase PENDING) to DONE; resolves with the final record. */
  async run(): Promise<Migration> {
    let domain: Domain;
    try {
      await this.phase(MigrationPhase.MIGRATION_PHASE_PREFLIGHT, 'admitted');
      domain = await this.preflight();
    } catch (err) {
      return this.endUntouched(err);
    }
    const options = this.ctx.journal.current.options;
    try {
      if (options?.compaction) {
        await this.compactAndPrepareTarget(domain);
      } else {
        await this.phase(MigrationPhase.MIGRATION_PHASE_PREPARING_TARGET, 'creating the receiving domain');
        await this.prepareTarget(domain);
      }
      await this.precopy(domain);
      if (options?.verify) await this.verify();
      await this.commit();
    } catch (err) {
      if (leavesRecordAlone(err)) throw err;
      this.ctx.logger.warn({ err: describeError(err) }, 'migration failed before the commit point; rolling back');
      await this.writeFinalRound();
      return rollBack(this.ctx, this.steps, causeOf(err));
    }
    return rollForward(this.ctx, this.steps, this.window);
  }

  /** Finishes a migration a previous coordinator left unfinished (see recoveryPlan). */
  async resume(): Promise<Migration> {
    const m = this.ctx.journal.current;
    switch (recoveryPlan(m.phase)) {
      case 'roll-forward':
        return rollForward(this.ctx, this.steps);
      case 'roll-back':
        return rollBack(this.ctx, this.steps, m.cancelRequested ? { kind: 'cancel', reason: m.cancelReason || 'cancelled' } : undefined);
      default:
        return m;
    }
  }

  /** Enters a phase at a step boundary (a pending cancel or shutdown stops here first). */
  private async phase(to: MigrationPhase, reason: string, change?: (m: Migration) => void): Promise<Migration> {
    this.steps.checkpoint();
    const carried = this.takeFinalRound();
    const m = await this.ctx.journal.enterPhase(to, reason, change, carried).catch((err: unknown) => {
      this.finalRound ??= carried;
      throw err;
    });
    this.ctx.trace.enterPhase(to);
    return m;
  }

  /** Ends a migration that failed or was cancelled before anything was touched. */
  private async endUntouched(err: unknown): Promise<Migration> {
    if (leavesRecordAlone(err)) throw err;
    const { journal } = this.ctx;
    const phase = journal.current.phase;
    if (err instanceof MigrationCancelled) {
      return journal.finish(MigrationOutcome.MIGRATION_OUTCOME_CANCELLED, 'cancelled', (m) => {
        m.failure = failureRecord(phase, { kind: 'cancel', reason: err.reason });
      });
    }
    const failure = err instanceof MigrationFailure ? err : new MigrationFailure(FailureCode.FAILURE_CODE_INTERNAL, describeError(err));
    this.ctx.logger.warn({ err: failure.message }, 'migration rejected');
    return journal.finish(MigrationOutcome.MIGRATION_OUTCOME_FAILED, failure.message, (m) => {
      m.failure = failureRecord(phase, { kind: 'failure', failure });
    });
  }

  /** CheckMigration on both hosts; every reason either reports fails the migration. */
  private async preflight(): Promise<Domain> {
    const { journal, timing } = this.ctx;
    const m = journal.current;
    const reasons: PreflightReason[] = [];
    const check = async (role: MigrationRole, host: string, request: Partial<CheckMigrationRequest>): Promise<CheckMigrationResponse | undefined> => {
      try {
        // Pre-flight only reads: a host that stays silent is a reason, not worth a long wait.
        const res = await this.steps.call('CheckMigration', host, { failure: FailureCode.FAILURE_CODE_PREFLIGHT_REJECTED, attempts: 2 }, (h) =>
          unaryCall(h.agent.checkMigration, h.agent, CheckMigrationRequest.fromPartial(request), { deadlineMs: timing.callDeadlineMs }),
        );
        reasons.push(...res.reasons);
        return res;
      } catch (err) {
        if (err instanceof MigrationCancelled || leavesRecordAlone(err)) throw err;
        const unregistered = err instanceof MigrationFailure && err.code === FailureCode.FAILURE_CODE_HOST_UNREACHABLE && err.grpcCode === undefined;
        reasons.push({
          code: unregistered ? PreflightCode.PREFLIGHT_CODE_HOST_UNKNOWN : PreflightCode.PREFLIGHT_CODE_HOST_UNREACHABLE,
          message: describeError(err),
          host,
          role,
        });
        return undefined;
      }
    };
    const source = await check(MigrationRole.MIGRATION_ROLE_SOURCE, m.sourceHost, {
      role: MigrationRole.MIGRATION_ROLE_SOURCE,
      migrationId: m.id,
      domainName: m.domainName,
    });
    const domain = source?.domain;
    if (source && !domain && !reasons.some((r) => r.code === PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_FOUND)) {
      reasons.push({ code: PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_FOUND, message: `no domain "${m.domainName}" on ${m.sourceHost}`, host: m.sourceHost, role: MigrationRole.MIGRATION_ROLE_SOURCE });
    }
    await check(MigrationRole.MIGRATION_ROLE_TARGET, m.targetHost, {
      role: MigrationRole.MIGRATION_ROLE_TARGET,
      migrationId: m.id,
      domainName: m.domainName,
      requiredPages: domain?.nrPages ?? 0n,
      maxPages: domain ? memoryPagesOf(domain) : 0n,
      source: source?.host,
    });
    if (reasons.length > 0 || !domain) {
      const summary = reasons.map((r) => `${r.host ? `${r.host}: ` : ''}${r.message || PreflightCode[r.code]}`).join('; ');
      throw new MigrationFailure(FailureCode.FAILURE_CODE_PREFLIGHT_REJECTED, `pre-flight rejected the migration: ${summary}`, '', reasons);
    }
    await journal.write({
      change: (r) => {
        r.sourceDomid = domain.domid;
        r.memoryBytes = memoryPagesOf(domain) * 4096n;
      },
    });
    return domain;
  }

  /**
   * Compaction on the source and the receiving domain on the target at the same time: neither
   * needs the other, and one after the other the target's preparation would add its time to every
   * compacted migration. The record still goes COMPACTING, then PREPARING_TARGET (entered once
   * both are done), so a rollback from COMPACTING also looks for a receiving domain. A target that
   * fails cuts the compaction short: the migration is over either way.
   */
  private async compactAndPrepareTarget(domain: Domain): Promise<void> {
    await this.phase(MigrationPhase.MIGRATION_PHASE_COMPACTING, 'pre-flight passed; compacting the guest while the target prepares');
    const targetFailed = new AbortController();
    const target = this.prepareTarget(domain).catch((err: unknown) => {
      targetFailed.abort(err);
      throw err;
    });
    const [compacted, prepared] = await Promise.allSettled([this.compact(domain, targetFailed.signal), target]);
    if (prepared.status === 'rejected') throw prepared.reason;
    if (compacted.status === 'rejected') throw compacted.reason;
    await this.phase(MigrationPhase.MIGRATION_PHASE_PREPARING_TARGET, 'compacted; receiving domain ready');
  }

  /** Balloon compaction on the source: free guest memory goes back to Xen and is never sent. */
  private async compact(domain: Domain, targetFailed: AbortSignal): Promise<void> {
    const { journal, fence, timing } = this.ctx;
    const o = journal.current.options!;
    const res = await this.steps.call('Compact', journal.current.sourceHost, { failure: FailureCode.FAILURE_CODE_COMPACTION_FAILED, interruptible: true }, (h, signal) =>
      unaryCall(
        h.balloon.compact,
        h.balloon,
        {
          fence,
          domid: domain.domid,
          headroomFraction: o.compactionHeadroomFraction,
          settleTimeoutMs: o.compactionSettleTimeoutMs,
          onTimeout: o.onCompactionTimeout,
        },
        { deadlineMs: Number(o.compactionSettleTimeoutMs) + timing.callDeadlineMs, signal: AbortSignal.any([signal, targetFailed]) },
      ),
    );
    const result = res.result;
    await journal.write({
      change: (m) => {
        m.compaction = result;
        if (m.totals && result) m.totals.balloonReleasedPages = result.releasedPages;
      },
    });
    const shortfall = result?.shortfall ?? CompactionShortfall.COMPACTION_SHORTFALL_UNSPECIFIED;
    if (
      result &&
      !result.reached &&
      o.onCompactionTimeout === CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL &&
      shortfall !== CompactionShortfall.COMPACTION_SHORTFALL_NOTHING_TO_RELEASE
    ) {
      throw new MigrationFailure(FailureCode.FAILURE_CODE_COMPACTION_FAILED, `compaction fell short: ${result.reason || CompactionShortfall[shortfall]}`, journal.current.sourceHost);
    }
  }

  /** The paused, empty receiving domain and its streaming session (in phase PREPARING_TARGET, or COMPACTING alongside compaction). */
  private async prepareTarget(domain: Domain): Promise<void> {
    const { journal, fence, timing } = this.ctx;
    const m = journal.current;
    const deadline = { deadlineMs: timing.callDeadlineMs };
    const failure = FailureCode.FAILURE_CODE_TARGET_PREPARATION_FAILED;
    const created = await this.steps.call('CreateRestoreDomain', m.targetHost, { failure }, (h) =>
      unaryCall(h.agent.createRestoreDomain, h.agent, { fence, name: m.domainName, maxPages: domain.maxPages, vcpus: domain.vcpus, uuid: domain.uuid, xlConfig: domain.xlConfig, memoryPages: domain.memoryPages }, deadline),
    );
    const targetDomid = created.domain?.domid ?? 0;
    if (!targetDomid) throw new MigrationFailure(failure, `CreateRestoreDomain on ${m.targetHost} returned no domain`, m.targetHost);
    await journal.write({ change: (r) => void (r.targetDomid = targetDomid) });
    // A fresh secret per migration and term: only this coordinator's source may connect.
    this.token = randomBytes(24).toString('hex');
    const session = await this.steps.call('OpenReceiveSession', m.targetHost, { failure }, (h) =>
      unaryCall(h.streamer.openReceiveSession, h.streamer, { fence, domid: targetDomid, token: this.token }, deadline),
    );
    this.peerEndpoint = session.dataEndpoint;
  }

  /** Log-dirty on, then the policy's rounds; ends with the guest suspended and the final round sent. */
  private async precopy(domain: Domain): Promise<void> {
    const { journal, fence, timing } = this.ctx;
    const m = await this.phase(MigrationPhase.MIGRATION_PHASE_PRECOPY, 'receiving domain ready; log-dirty on');
    const tracking = await this.steps.call('StartTracking', m.sourceHost, { failure: FailureCode.FAILURE_CODE_TRACKING_FAILED }, (h) =>
      unaryCall(h.tracker.startTracking, h.tracker, { fence, domid: domain.domid, policy: { policy: m.policy, layered: m.options?.layered } }, { deadlineMs: timing.callDeadlineMs }),
    );
    const trackingStartedAt = Date.now();
    await journal.write({
      change: (r) => {
        if (r.totals) r.totals.populatedPages = tracking.populatedPages;
      },
    });
    const report = await new PrecopyRun(this.ctx, this.steps, {
      sourceHost: m.sourceHost,
      sourceDomid: domain.domid,
      peerEndpoint: this.peerEndpoint,
      token: this.token,
      policy: m.policy,
      options: m.options!,
      memoryBytes: m.memoryBytes,
      populatedPages: Number(tracking.populatedPages),
      maxPages: Number(tracking.maxPages),
      trackingStartedAt,
    }).run();
    this.window = { suspendStartedAt: report.suspendStartedAt, finalCall: report.finalCall };
    // Both recorded with the next phase's write: no extra write inside the downtime window.
    this.stateBytes = report.stateBytes;
    this.finalRound = report.finalRound;
  }

  private takeFinalRound(): JournalWrite | undefined {
    const w = this.finalRound;
    this.finalRound = undefined;
    return w;
  }

  /** On the way to a rollback: the final round, if it was sent, still belongs in the record. */
  private async writeFinalRound(): Promise<void> {
    const w = this.takeFinalRound();
    if (!w) return;
    await this.ctx.journal.write(w).catch((err: unknown) => this.ctx.logger.warn({ err: describeError(err) }, 'could not record the final round'));
  }

  private addStateBytes(m: Migration): void {
    if (!m.totals || this.stateBytes === 0n) return;
    m.totals.bytesSent += this.stateBytes;
    m.totals.downtimeBytes += this.stateBytes;
    this.stateBytes = 0n;
  }

  /** Both sides digest every populated page; a difference fails the migration. */
  private async verify(): Promise<void> {
    const { timing } = this.ctx;
    const started = Date.now();
    const m = await this.phase(MigrationPhase.MIGRATION_PHASE_VERIFYING, 'comparing memory digests', (r) => this.addStateBytes(r));
    const failure = FailureCode.FAILURE_CODE_TRANSFER_FAILED;
    const digest = (host: string, domid: number) =>
      this.steps.call('MemoryDigest', host, { failure, interruptible: true }, (h, signal) =>
        unaryCall(h.streamer.memoryDigest, h.streamer, { domid, algorithm: 0 }, { deadlineMs: timing.roundDeadlineMs, signal }),
      );
    const [source, target] = await Promise.all([digest(m.sourceHost, m.sourceDomid), digest(m.targetHost, m.targetDomid)]);
    if (!source.digest.equals(target.digest) || source.pageCount !== target.pageCount) {
      throw new MigrationFailure(
        FailureCode.FAILURE_CODE_VERIFY_MISMATCH,
        `memory differs: source ${source.pageCount} pages (${source.digest.toString('hex').slice(0, 16)}…), target ${target.pageCount} pages (${target.digest.toString('hex').slice(0, 16)}…)`,
        m.targetHost,
      );
    }
    this.verified = true;
    this.window.verifyMs = Date.now() - started;
  }

  /** The commit point: durably recorded before the target may run. A cancel that got in first wins. */
  private async commit(): Promise<void> {
    this.steps.checkpoint();
    const finalRound = this.takeFinalRound();
    try {
      await this.ctx.journal.enterPhase(
        MigrationPhase.MIGRATION_PHASE_COMMITTED,
        this.verified ? 'memory verified; committed' : 'state sent; committed',
        (m) => {
          if (m.cancelRequested) throw new MigrationCancelled(m.cancelReason || 'cancelled');
          this.addStateBytes(m);
          if (m.totals) m.totals.memoryVerified = this.verified;
        },
        finalRound,
      );
    } catch (err) {
      // Not committed (a cancel got in first, or the write failed): the rollback records the round.
      this.finalRound = finalRound;
      throw err;
    }
    this.ctx.trace.enterPhase(MigrationPhase.MIGRATION_PHASE_COMMITTED);
  }
}

/** What a failure before the commit point rolls back for. */
export function causeOf(err: unknown): RollbackCause {
  if (err instanceof MigrationCancelled) return { kind: 'cancel', reason: err.reason };
  if (err instanceof MigrationFailure) return { kind: 'failure', failure: err };
  const code = grpcStatus(err) === status.UNAVAILABLE ? FailureCode.FAILURE_CODE_HOST_UNREACHABLE : FailureCode.FAILURE_CODE_INTERNAL;
  return { kind: 'failure', failure: new MigrationFailure(code, describeError(err)) };
}
