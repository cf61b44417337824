// Pre-copy stop policies. Pure functions of the facts of the rounds so far: no I/O and no clocks,
// so a live migration and the simulator run exactly the same decisions.

export type PolicyName = 'xen-4.17' | 'xen-legacy' | 'layered';

/** What the pre-copy loop knows when it asks the policy. Xen's `struct precopy_stats`, extended. */
export interface PrecopyStats {
  /** Live rounds sent so far; the full pass (round 0) counts as 1. Xen's `iteration`. */
  iteration: number;
  /** Pages sent in all live rounds so far. Xen's `total_written`. */
  totalSent: number;
  /** Dirty pages found by the CLEAN of the round being prepared; -1 before that CLEAN (as Xen passes it). */
  dirtyCount: number;
  /** Pages the prepared round would send (after the classifier held some back). */
  toSend: number;
  /** Pages held back for stop-and-copy (always 0 for the Xen policies). */
  held: number;
  /** Populated pages of the domain when pre-copy started. */
  domainPages: number;
  /** Size of the p2m (max pfn + 1): Xen legacy's `p2m_size`. */
  p2mSize: number;
  /** The last live round sent: pages sent and pages skipped (legacy to_skip), bytes and time. */
  lastRound: { pagesSent: number; pagesSkipped: number; bytes: number; elapsedMs: number };
  /** Measured link throughput in bytes per second (last round; 0 if unknown). */
  bandwidthBps: number;
  /** What remained to send (held + toSend) after each earlier CLEAN, oldest first. */
  remainingHistory: readonly number[];
}

export type PrecopyDecision =
  | { action: 'continue' }
  /**
   * Stop pre-copy and go to stop-and-copy. `sendLive` reproduces Xen's quirk of still sending the
   * prepared round with the guest running before it breaks out of the loop.
   */
  | { action: 'stop'; sendLive: boolean; reason: StopReason }
  | { action: 'abort'; reason: string };

export type StopReason =
  | 'max-iterations'
  | 'dirty-below-threshold'
  | 'sent-plus-skipped-below-threshold'
  | 'total-sent-cap'
  | 'downtime-target-met'
  | 'no-progress';

export interface PrecopyPolicy {
  readonly name: PolicyName;
  /** Layered only: hold jittery pages back (the memory-tracker's classifier does the holding). */
  readonly holdsJitteryPages: boolean;
  /** Xen legacy's in-round `to_skip`: PEEK before each batch and skip pages already re-dirtied. */
  readonly skipsRedirtiedPages: boolean;
  /** After a live round has been sent, before the next CLEAN (Xen asks with dirty_count = -1 here). */
  afterRound(stats: PrecopyStats): PrecopyDecision;
  /** After the CLEAN that prepares the next round. */
  afterClean(stats: PrecopyStats): PrecopyDecision;
}

const CONTINUE: PrecopyDecision = { action: 'continue' };

/** Current Xen (4.6 and later, `simple_precopy_policy`): 5 iterations or fewer than 50 dirty pages. */
export function xen417Policy(opts: { maxIterations?: number; dirtyThreshold?: number } = {}): PrecopyPolicy {
  const maxIterations = opts.maxIterations ?? 5; // SPP_MAX_ITERATIONS
  const dirtyThreshold = opts.dirtyThreshold ?? 50; // SPP_TARGET_DIRTY_COUNT
  const decide = (s: PrecopyStats): PrecopyDecision => {
    if (s.dirtyCount >= 0 && s.dirtyCount < dirtyThreshold) return { action: 'stop', sendLive: true, reason: 'dirty-below-threshold' };
    if (s.iteration >= maxIterations) return { action: 'stop', sendLive: true, reason: 'max-iterations' };
    return CONTINUE;
  };
  return {
    name: 'xen-4.17',
    holdsJitteryPages: false,
    skipsRedirtiedPages: false,
    // With dirty_count = -1 only the iteration bound can fire; Xen then breaks without a CLEAN.
    afterRound: (s) => {
      const d = decide({ ...s, dirtyCount: -1 });
      return d.action === 'stop' ? { ...d, sendLive: false } : d;
    },
    afterClean: decide,
  };
}

/**
 * Classic Xen (xc_domain_save.c, 2005–2015): at most 29 iterations, stop when a round sent plus
 * skipped fewer than 50 pages or more than 3× the p2m size was sent in all; pages re-dirtied during
 * the round are skipped (PEEK into to_skip before each batch).
 */
export function xenLegacyPolicy(opts: { maxIterations?: number; threshold?: number; maxFactor?: number } = {}): PrecopyPolicy {
  const maxIterations = opts.maxIterations ?? 29; // DEF_MAX_ITERS
  const threshold = opts.threshold ?? 50;
  const maxFactor = opts.maxFactor ?? 3; // DEF_MAX_FACTOR
  return {
    name: 'xen-legacy',
    holdsJitteryPages: false,
    skipsRedirtiedPages: true,
    afterRound: (s) => {
      if (s.iteration >= maxIterations) return { action: 'stop', sendLive: false, reason: 'max-iterations' };
      if (s.lastRound.pagesSent + s.lastRound.pagesSkipped < threshold) {
        return { action: 'stop', sendLive: false, reason: 'sent-plus-skipped-below-threshold' };
      }
      if (s.totalSent > s.p2mSize * maxFactor) return { action: 'stop', sendLive: false, reason: 'total-sent-cap' };
      return CONTINUE;
    },
    // The legacy loop decides only at the end of a round.
    afterClean: () => CONTINUE,
  };
}

export interface LayeredStopParams {
  /** Stop-and-copy as soon as what remains would be sent within this many milliseconds (0 = no target). */
  downtimeTargetMs: number;
  /** A round "pays off" when it shrinks what remains by at least this fraction of the best so far. */
  minProgress: number;
  /** Stop after this many rounds in a row that did not pay off. */
  stallRounds: number;
  /** Stop anyway when what remains is this small (pages): Xen's 50. */
  smallRemainder: number;
  /** Stop after this many live rounds whatever happens. */
  maxIterations: number;
  /** Stop when more than this multiple of the domain's pages has been sent. */
  maxFactor: number;
}

export const DEFAULT_LAYERED_STOP: LayeredStopParams = {
  downtimeTargetMs: 0,
  minProgress: 0.1,
  stallRounds: 2,
  smallRemainder: 50,
  maxIterations: 29,
  maxFactor: 3,
};

/** The expected stop-and-copy time of sending `pages` pages at `bandwidthBps` (bytes per second). */
export function expectedDowntimeMs(pages: number, bandwidthBps: number, pageWireBytes = 4096 + 8): number {
  if (bandwidthBps <= 0) return Number.POSITIVE_INFINITY;
  return (pages * pageWireBytes * 1000) / bandwidthBps;
}

/**
 * The thesis' stop rule, with the lesson of the first-order model in DESIGN.md: every held page is
 * sent during downtime, so the rule counts the held set, and it keeps going while rounds pay off so
 * that held pages which calm down are released and sent live. What remains after a CLEAN is the
 * held set plus the prepared round. Stop when that would be sent within the downtime target, when
 * it is tiny, when `stallRounds` rounds in a row did not shrink it (the guest's writable working
 * set is reached, or it never converges), or at the caps. The prepared round is still sent live
 * before stopping: it holds the calm pages, and the final round then only carries the hot ones.
 */
export function layeredPolicy(params: Partial<LayeredStopParams> = {}): PrecopyPolicy {
  const p = { ...DEFAULT_LAYERED_STOP, ...params };
  return {
    name: 'layered',
    holdsJitteryPages: true,
    skipsRedirtiedPages: false,
    afterRound: (s) => {
      if (s.iteration >= p.maxIterations) return { action: 'stop', sendLive: false, reason: 'max-iterations' };
      if (s.totalSent > s.domainPages * p.maxFactor) return { action: 'stop', sendLive: false, reason: 'total-sent-cap' };
      return CONTINUE;
    },
    afterClean: (s) => {
      const remaining = s.held + s.toSend;
      if (remaining < p.smallRemainder) return { action: 'stop', sendLive: true, reason: 'dirty-below-threshold' };
      if (p.downtimeTargetMs > 0 && expectedDowntimeMs(remaining, s.bandwidthBps) <= p.downtimeTargetMs) {
        return { action: 'stop', sendLive: true, reason: 'downtime-target-met' };
      }
      if (stalled(s.remainingHistory, remaining, p)) return { action: 'stop', sendLive: true, reason: 'no-progress' };
      return CONTINUE;
    },
  };
}

/** True when none of the last `stallRounds` CLEANs shrank what remains below the best seen before them. */
function stalled(history: readonly number[], remaining: number, p: LayeredStopParams): boolean {
  const all = [...history, remaining];
  if (all.length <= p.stallRounds) return false;
  const before = all.slice(0, all.length - p.stallRounds);
  const best = Math.min(...before);
  return all.slice(-p.stallRounds).every((r) => r >= best * (1 - p.minProgress));
}

export function policyByName(name: PolicyName, layered?: Partial<LayeredStopParams>): PrecopyPolicy {
  switch (name) {
    case 'xen-4.17':
      return xen417Policy();
    case 'xen-legacy':
      return xenLegacyPolicy();
    case 'layered':
      return layeredPolicy(layered);
  }
}
