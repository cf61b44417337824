// Turns the pre-copy loop's rounds into RoundRecords in the migration record and RoundCompleted
// events. A round is reported once the policy has decided what follows it (its record carries the
// decision), which is after the next CLEAN; rounds sent after a stop decision (Xen's last live
// round) are reported at once. The final round is sent while the guest is suspended: its record
// is not written on its own but handed over (takeFinal) to ride on the next write the migration
// makes anyway (the commit), so the downtime window holds one record write, not two.

import type { RoundRecord as LoopRound } from '@ferry/policy';
import { MigrationTotals, RoundDecision, type LayerSizes, type Migration, type RoundRecord } from '@ferry/proto';
import type { JournalWrite, MigrationJournal } from './journal';
import type { Decision } from './precopy-policy';

/** What the executor measured about a round besides the loop's figures. */
export interface RoundExtras {
  startedAt: Date;
  /** Time PrepareRound took (CLEAN, classification). */
  prepareMs: number;
  /** Time SendRound took, as the coordinator saw it. */
  sendMs: number;
  /** Dirty pages per second since the previous CLEAN (0 for round 0). */
  dirtyRate: number;
  layers?: LayerSizes;
}

export class RoundReporter {
  private pending: LoopRound | undefined;
  private stopReason: string | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  private finalWrite: JournalWrite | undefined;

  constructor(
    private readonly journal: MigrationJournal,
    private readonly extras: (round: number) => RoundExtras | undefined,
    private readonly onReported: (r: RoundRecord) => void = () => {},
  ) {}

  /** The reason of the stop decision, once there is one. */
  get stoppedBecause(): string | undefined {
    return this.stopReason;
  }

  /** The loop finished sending a round. */
  roundSent(r: LoopRound): void {
    if (this.stopReason === undefined) {
      this.pending = r;
      return;
    }
    this.report(r, r.final ? RoundDecision.ROUND_DECISION_UNSPECIFIED : RoundDecision.ROUND_DECISION_STOP_AND_COPY, r.final ? 'final round' : this.stopReason);
  }

  /** The policy decided what follows the pending round. */
  decided(d: Decision): void {
    const decision =
      d.decision.action === 'continue'
        ? RoundDecision.ROUND_DECISION_CONTINUE
        : d.decision.action === 'stop'
          ? RoundDecision.ROUND_DECISION_STOP_AND_COPY
          : RoundDecision.ROUND_DECISION_ABORT;
    if (d.decision.action === 'stop') this.stopReason = d.reason;
    if (this.pending) this.report(this.pending, decision, d.reason);
    this.pending = undefined;
  }

  /** The final round's record write, once (for the caller to merge into its next write). */
  takeFinal(): JournalWrite | undefined {
    const w = this.finalWrite;
    this.finalWrite = undefined;
    return w;
  }

  /** Waits until every reported round is recorded; rethrows a failed write. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  private report(r: LoopRound, decision: RoundDecision, reason: string): void {
    const x = this.extras(r.round);
    const record: RoundRecord = {
      round: r.round,
      final: r.final,
      startedAt: x?.startedAt,
      dirtyCount: BigInt(r.dirtyCount),
      pagesSent: BigInt(r.pagesSent),
      zeroPages: BigInt(r.zeroPages),
      pagesDeferred: BigInt(r.held),
      pagesReleased: BigInt(r.released),
      pagesSkipped: BigInt(r.pagesSkipped),
      bytes: BigInt(r.bytes),
      elapsedMs: BigInt(Math.round((x?.prepareMs ?? 0) + (x?.sendMs ?? r.elapsedMs))),
      throughputBps: BigInt(Math.round(r.throughputBps * 8)),
      dirtyRate: x?.dirtyRate ?? 0,
      expectedDowntimeMs: BigInt(Number.isFinite(r.expectedDowntimeMs) ? Math.round(r.expectedDowntimeMs) : 0),
      layers: x?.layers,
      decision,
      decisionReason: reason,
    };
    this.onReported(record);
    const write: JournalWrite = {
      change: (m) => {
        m.rounds.push(record);
        addRound(m, record);
      },
      events: (m) => [{ $case: 'roundCompleted', roundCompleted: { round: record, totals: m.totals } }],
    };
    if (r.final) {
      this.finalWrite = write;
      return;
    }
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return;
      try {
        await this.journal.write(write);
      } catch (err) {
        this.failure = err;
      }
    });
  }
}

/** Adds a round to the migration's totals. */
export function addRound(m: Migration, r: RoundRecord): void {
  const t = m.totals ?? MigrationTotals.fromPartial({});
  t.rounds += 1;
  t.pagesSent += r.pagesSent;
  t.bytesSent += r.bytes;
  t.zeroPages += r.zeroPages;
  // The tracker reports held pages per round, not distinct ones: the most held at once is the
  // best lower bound of the distinct pages deferred.
  if (r.pagesDeferred > t.deferredPages) t.deferredPages = r.pagesDeferred;
  if (r.final) {
    t.downtimePages += r.pagesSent;
    t.downtimeBytes += r.bytes;
  }
  m.totals = t;
}
