// The live executor of the pre-copy loop (@ferry/policy runPrecopy): each round is prepared by
// the source's memory-tracker (CLEAN, classify, fix the send set; the bitmap stays on the host)
// and streamed by the source's page-streamer straight to the target's; suspend is the source
// host-agent's suspend handshake. The final round is one SendRound that has the source's tracker
// prepare it and hand over its send set in one call (prepare_final), streams it and the suspended
// domain's state over the open data connection (include_state); its record is left for the commit
// to write (takeFinal). So the downtime window holds three coordinator calls (suspend, final
// round, unpause) and one record write, and no event publishing (held from STOP_AND_COPY until the
// unpause returns). The coordinator only sees counts. Every step boundary checks for a cancel, and
// streaming a round is interrupted by one.

import { PrecopyAborted, runPrecopy, type PrecopyExecutor, type PrecopyOutcome, type RoundPlan, type RoundResult } from '@ferry/policy';
import type { JournalWrite } from './journal';
import { FailureCode, MigrationPhase, type MigrationOptions, type MigrationPolicy, type PrepareRoundResponse, type RoundRecord, type SendRoundResponse } from '@ferry/proto';
import { MigrationFailure } from './failures';
import { unaryCall } from './grpc-unary';
import { completionTimeoutMs, decidingPolicy, policyFor } from './precopy-policy';
import { RoundReporter, type RoundExtras } from './round-reporter';
import type { RunContext, Steps } from './steps';

export interface PrecopySetup {
  sourceHost: string;
  sourceDomid: number;
  /** The target streamer's data endpoint and the session token. */
  peerEndpoint: string;
  token: string;
  policy: MigrationPolicy;
  options: MigrationOptions;
  memoryBytes: bigint;
  /** From StartTracking. */
  populatedPages: number;
  maxPages: number;
  /** When log-dirty was enabled (the "previous CLEAN" of round 1). */
  trackingStartedAt: number;
}

export interface PrecopyReport {
  outcome: PrecopyOutcome;
  /** Why pre-copy stopped, for people. */
  stopReason: string;
  /** When the suspend handshake started: downtime runs from here. */
  suspendStartedAt: number;
  /** When the final round's call was made and when it returned (absent if it never returned). */
  finalCall?: { startedAt: number; endedAt: number };
  /** True when the completion timeout ended pre-copy. */
  timedOut: boolean;
  /** Bytes of vCPU and device state sent with the final round. */
  stateBytes: bigint;
  /** The final round's record, for the next phase write to carry. */
  finalRound: JournalWrite | undefined;
}

export class PrecopyRun implements PrecopyExecutor {
  private readonly extras = new Map<number, RoundExtras>();
  private readonly reporter: RoundReporter;
  private lastCleanAt: number;
  private suspendStartedAt = 0;
  private finalCall: { startedAt: number; endedAt: number } | undefined;
  private timedOut = false;
  private finalRound: number | undefined;
  /** The final round, sent by prepareRound(final) and handed to the loop by sendRound. */
  private finalSent: RoundResult | undefined;
  private stateBytes = 0n;

  constructor(
    private readonly ctx: RunContext,
    private readonly steps: Steps,
    private readonly setup: PrecopySetup,
  ) {
    this.lastCleanAt = setup.trackingStartedAt;
    this.reporter = new RoundReporter(ctx.journal, (round) => this.extras.get(round), (r: RoundRecord) => this.traceRound(r));
  }

  async run(): Promise<PrecopyReport> {
    const { options } = this.setup;
    const policy = decidingPolicy(
      policyFor(this.setup.policy, options),
      {
        deadline: Date.now() + completionTimeoutMs(options, this.setup.memoryBytes),
        onTimeout: options.onTimeout,
        downtimeTargetMs: Number(options.downtimeTargetMs),
      },
      (d) => {
        if (d.timedOut) this.timedOut = true;
        this.reporter.decided(d);
      },
    );
    let outcome: PrecopyOutcome;
    try {
      outcome = await runPrecopy(this, policy, { domainPages: this.setup.populatedPages, p2mSize: this.setup.maxPages });
    } catch (err) {
      await this.reporter.flush().catch(() => {});
      const finalRound = this.reporter.takeFinal();
      if (finalRound) await this.ctx.journal.write(finalRound).catch(() => {});
      if (!(err instanceof PrecopyAborted)) throw err;
      const code = this.timedOut ? FailureCode.FAILURE_CODE_COMPLETION_TIMEOUT : FailureCode.FAILURE_CODE_NOT_CONVERGING;
      throw new MigrationFailure(code, `pre-copy aborted: ${err.reason}`, this.setup.sourceHost);
    }
    // Earlier rounds are written by now (the final round started after flushing them).
    await this.reporter.flush();
    return {
      outcome,
      stopReason: this.reporter.stoppedBecause ?? '',
      suspendStartedAt: this.suspendStartedAt,
      finalCall: this.finalCall,
      timedOut: this.timedOut,
      stateBytes: this.stateBytes,
      finalRound: this.reporter.takeFinal(),
    };
  }

  async prepareRound(round: number, final: boolean): Promise<RoundPlan> {
    await this.reporter.flush();
    this.ctx.trace.startRound(round, final);
    if (final) return this.prepareAndSendFinal(round);
    const startedAt = Date.now();
    const res = await this.steps.call('PrepareRound', this.setup.sourceHost, { failure: FailureCode.FAILURE_CODE_TRACKING_FAILED }, (h) =>
      unaryCall(h.tracker.prepareRound, h.tracker, { fence: this.ctx.fence, round, final, takeSendSet: false }, { deadlineMs: this.ctx.timing.callDeadlineMs }),
    );
    this.noteRound(round, startedAt, Date.now() - startedAt, res);
    return planOf(res);
  }

  /** The stop-and-copy round in one call: prepared by the source's tracker, streamed with the state. */
  private async prepareAndSendFinal(round: number): Promise<RoundPlan> {
    this.finalRound = round;
    const startedAt = Date.now();
    const res = await this.stream(round, true);
    const endedAt = Date.now();
    this.finalCall = { startedAt, endedAt };
    const prepared = res.prepared;
    if (!prepared) throw new MigrationFailure(FailureCode.FAILURE_CODE_TRACKING_FAILED, `SendRound of the final round ${round} came back without the tracker's counts`, this.setup.sourceHost);
    const totalMs = endedAt - startedAt;
    const prepareMs = Math.min(totalMs, Number(prepared.elapsedMs));
    this.noteRound(round, startedAt, prepareMs, prepared);
    const x = this.extras.get(round)!;
    x.sendMs = totalMs - prepareMs;
    this.stateBytes = res.stateBytes;
    this.finalSent = resultOf(res, x.sendMs);
    return planOf(prepared);
  }

  private noteRound(round: number, startedAt: number, prepareMs: number, res: PrepareRoundResponse): void {
    const sinceClean = (startedAt - this.lastCleanAt) / 1000;
    this.lastCleanAt = startedAt;
    this.extras.set(round, {
      startedAt: new Date(startedAt),
      prepareMs,
      sendMs: 0,
      dirtyRate: round === 0 || sinceClean <= 0 ? 0 : Number(res.dirtyCount) / sinceClean,
      layers: res.layers,
    });
  }

  async sendRound(round: number): Promise<RoundResult> {
    if (round === this.finalRound && this.finalSent) {
      const sent = this.finalSent;
      this.finalSent = undefined;
      return sent;
    }
    await this.reporter.flush();
    const startedAt = Date.now();
    const res = await this.stream(round, false);
    const sendMs = Date.now() - startedAt;
    const x = this.extras.get(round);
    if (x) x.sendMs = sendMs;
    return resultOf(res, sendMs);
  }

  /** SendRound on the source; `final` also prepares the round first and sends the state after it. */
  private stream(round: number, final: boolean): Promise<SendRoundResponse> {
    const { sourceHost, sourceDomid, peerEndpoint, token, options } = this.setup;
    return this.steps.call('SendRound', sourceHost, { failure: FailureCode.FAILURE_CODE_TRANSFER_FAILED, interruptible: true, throughPeer: true }, (h, signal) =>
      unaryCall(
        h.streamer.sendRound,
        h.streamer,
        {
          fence: this.ctx.fence,
          round,
          domid: sourceDomid,
          peerEndpoint,
          token,
          bandwidthBps: options.bandwidthBps,
          compression: options.compression,
          sendZeroPages: !options.zeroPageElision,
          includeState: final,
          prepareFinal: final,
        },
        { deadlineMs: this.ctx.timing.roundDeadlineMs, signal },
      ),
    );
  }

  async suspend(): Promise<void> {
    await this.reporter.flush();
    this.steps.checkpoint();
    await this.ctx.journal.enterPhase(MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY, this.reporter.stoppedBecause ?? 'pre-copy stopped');
    // STOP_AND_COPY is announced (a watcher may cancel a long stop-and-copy); the events after it
    // wait until the guest runs again (roll-forward) or the migration ends.
    this.ctx.journal.holdPublishing();
    this.ctx.trace.enterPhase(MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY);
    this.suspendStartedAt = Date.now();
    // Not interruptible: a suspend half done is undone by the rollback (ResumeDomain).
    await this.steps.call('SuspendDomain', this.setup.sourceHost, { failure: FailureCode.FAILURE_CODE_SUSPEND_FAILED }, (h) =>
      unaryCall(h.agent.suspendDomain, h.agent, { fence: this.ctx.fence, domid: this.setup.sourceDomid, timeoutMs: 0n }, { deadlineMs: this.ctx.timing.callDeadlineMs }),
    );
  }

  onRound(record: Parameters<NonNullable<PrecopyExecutor['onRound']>>[0]): void {
    this.reporter.roundSent(record);
  }

  private traceRound(r: RoundRecord): void {
    this.ctx.trace.endRound(r.round, {
      'ferry.pages_sent': Number(r.pagesSent),
      'ferry.dirty_count': Number(r.dirtyCount),
      'ferry.pages_deferred': Number(r.pagesDeferred),
      'ferry.bytes': Number(r.bytes),
      'ferry.decision': r.decisionReason,
    });
  }
}

function planOf(res: PrepareRoundResponse): RoundPlan {
  return {
    dirtyCount: Number(res.dirtyCount),
    faultCount: Number(res.faultCount),
    pagesToSend: Number(res.pagesToSend),
    held: Number(res.pagesDeferred),
    released: Number(res.pagesReleased),
  };
}

function resultOf(res: SendRoundResponse, sendMs: number): RoundResult {
  return {
    pagesSent: Number(res.pagesSent),
    pagesSkipped: Number(res.skippedPages),
    zeroPages: Number(res.zeroPages),
    bytes: Number(res.wireBytes),
    // The streamer's own clock excludes gRPC overhead; a round too short for it to measure
    // falls back to ours.
    elapsedMs: Number(res.elapsedMs) > 0 ? Number(res.elapsedMs) : Math.max(1, sendMs),
  };
}
