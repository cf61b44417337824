// The pre-copy loop, in Xen's order (xg_sr_save.c send_memory_live + suspend_and_send_dirty):
// round 0 sends every populated page; then ask the policy, CLEAN, ask again, send; finally suspend,
// CLEAN with FINAL and send what is left. The loop itself does no I/O: an executor does (gRPC calls
// to the memory-tracker, page-streamer and host-agent in a live migration; a dirty-trace model in the
// simulator), so both run the very same sequence of decisions.

import type { PrecopyPolicy, PrecopyStats, StopReason } from './policy';

export interface RoundPlan {
  /** Dirty pages the CLEAN returned (round 0: the populated pages). */
  dirtyCount: number;
  faultCount: number;
  pagesToSend: number;
  /** Pages held back (layered). */
  held: number;
  /** Held pages released into this round. */
  released: number;
}

export interface RoundResult {
  pagesSent: number;
  /** Pages skipped because they were re-dirtied during the round (xen-legacy's to_skip). */
  pagesSkipped: number;
  zeroPages: number;
  bytes: number;
  elapsedMs: number;
}

export interface PrecopyExecutor {
  /** Round 0 reads the p2m; later rounds CLEAN (FINAL when `final`) and classify. */
  prepareRound(round: number, final: boolean): Promise<RoundPlan>;
  sendRound(round: number, final: boolean): Promise<RoundResult>;
  /** Stop the guest (suspend handshake); stop-and-copy starts here. */
  suspend(): Promise<void>;
  /** Called after every round, e.g. to publish progress. */
  onRound?(record: RoundRecord): void | Promise<void>;
}

export interface RoundRecord extends RoundPlan, RoundResult {
  round: number;
  final: boolean;
  /** Bytes per second measured in this round (0 if nothing was sent). */
  throughputBps: number;
  /** Expected stop-and-copy time if pre-copy stopped after this round's CLEAN. */
  expectedDowntimeMs: number;
}

export interface PrecopyOutcome {
  rounds: RoundRecord[];
  stopReason: StopReason;
  /** Live rounds sent (Xen's iteration count when it stopped). */
  liveRounds: number;
}

export class PrecopyAborted extends Error {
  constructor(readonly reason: string) {
    super(`pre-copy aborted by policy: ${reason}`);
    this.name = 'PrecopyAborted';
  }
}

export async function runPrecopy(
  executor: PrecopyExecutor,
  policy: PrecopyPolicy,
  domain: { domainPages: number; p2mSize: number; pageWireBytes?: number },
): Promise<PrecopyOutcome> {
  const pageWireBytes = domain.pageWireBytes ?? 4096 + 8;
  const rounds: RoundRecord[] = [];
  const stats: PrecopyStats = {
    iteration: 0,
    totalSent: 0,
    dirtyCount: -1,
    toSend: 0,
    held: 0,
    domainPages: domain.domainPages,
    p2mSize: domain.p2mSize,
    lastRound: { pagesSent: 0, pagesSkipped: 0, bytes: 0, elapsedMs: 0 },
    bandwidthBps: 0,
    remainingHistory: [],
  };
  const remaining: number[] = [];

  const send = async (round: number, plan: RoundPlan, final: boolean): Promise<void> => {
    const result = await executor.sendRound(round, final);
    const throughputBps = result.elapsedMs > 0 ? (result.bytes * 1000) / result.elapsedMs : 0;
    if (!final) {
      stats.iteration++;
      stats.totalSent += result.pagesSent;
      stats.lastRound = { pagesSent: result.pagesSent, pagesSkipped: result.pagesSkipped, bytes: result.bytes, elapsedMs: result.elapsedMs };
      if (throughputBps > 0) stats.bandwidthBps = throughputBps;
    }
    const bw = stats.bandwidthBps;
    const record: RoundRecord = {
      round,
      final,
      ...plan,
      ...result,
      throughputBps,
      expectedDowntimeMs: bw > 0 ? ((plan.held + plan.pagesToSend) * pageWireBytes * 1000) / bw : 0,
    };
    rounds.push(record);
    await executor.onRound?.(record);
  };

  let round = 0;
  await send(0, await executor.prepareRound(0, false), false);

  let stopReason: StopReason;
  for (;;) {
    const beforeClean = policy.afterRound({ ...stats, dirtyCount: -1, remainingHistory: remaining });
    if (beforeClean.action === 'abort') throw new PrecopyAborted(beforeClean.reason);
    if (beforeClean.action === 'stop') {
      stopReason = beforeClean.reason;
      break;
    }
    round++;
    const plan = await executor.prepareRound(round, false);
    stats.dirtyCount = plan.dirtyCount;
    stats.toSend = plan.pagesToSend;
    stats.held = plan.held;
    const afterClean = policy.afterClean({ ...stats, remainingHistory: remaining });
    remaining.push(plan.held + plan.pagesToSend);
    if (afterClean.action === 'abort') throw new PrecopyAborted(afterClean.reason);
    if (afterClean.action === 'stop') {
      stopReason = afterClean.reason;
      // Otherwise the prepared pages stay unsent and join the final round.
      if (afterClean.sendLive) await send(round, plan, false);
      break;
    }
    await send(round, plan, false);
  }

  const liveRounds = stats.iteration;
  await executor.suspend();
  // The final round follows the last round sent (a prepared round that was not sent is folded in).
  const finalRound = rounds[rounds.length - 1].round + 1;
  await send(finalRound, await executor.prepareRound(finalRound, true), true);
  return { rounds, stopReason, liveRounds };
}
