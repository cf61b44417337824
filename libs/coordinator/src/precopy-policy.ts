// The pre-copy policy of one migration: the pure policy of @ferry/policy with the migration's
// options applied (round limit, downtime target), wrapped so that the coordinator learns each
// decision with a reason people can read, and so that the completion timeout (a wall-clock rule,
// which pure policies do not see) is applied at round boundaries.

import {
  expectedDowntimeMs,
  layeredPolicy,
  xen417Policy,
  xenLegacyPolicy,
  type PrecopyDecision,
  type PrecopyPolicy,
  type PrecopyStats,
} from '@ferry/policy';
import { MigrationPolicy, TimeoutAction, type MigrationOptions } from '@ferry/proto';
import { policyName } from './options';

/** The policy with the options' round limit and downtime target. */
export function policyFor(policy: MigrationPolicy, options: MigrationOptions): PrecopyPolicy {
  const maxIterations = options.maxRounds;
  switch (policyName(policy)) {
    case 'xen-4.17':
      return xen417Policy({ maxIterations });
    case 'xen-legacy':
      return xenLegacyPolicy({ maxIterations });
    case 'layered':
      return layeredPolicy({ maxIterations, downtimeTargetMs: Number(options.downtimeTargetMs) });
  }
}

/** The completion timeout of a migration: time per GiB of the domain's memory. */
export function completionTimeoutMs(options: MigrationOptions, memoryBytes: bigint): number {
  return (Number(options.completionTimeoutPerGibS) * 1000 * Number(memoryBytes)) / 1024 ** 3;
}

export interface Decision {
  decision: PrecopyDecision;
  /** Why, for people ("dirty pages 31 < 50", "5 iterations reached", ...). */
  reason: string;
  /** True when the completion timeout made the decision. */
  timedOut: boolean;
}

/**
 * Wraps `inner`: every decision that ends a round (a stop or abort after it was sent, or the
 * verdict after the next CLEAN) goes to `onDecision`; past `deadline` (epoch ms) the on-timeout
 * action replaces the policy's verdict.
 */
export function decidingPolicy(
  inner: PrecopyPolicy,
  opts: { deadline: number; onTimeout: TimeoutAction; downtimeTargetMs: number; now?: () => number },
  onDecision: (d: Decision) => void,
): PrecopyPolicy {
  const now = opts.now ?? Date.now;
  const timeout = (s: PrecopyStats): Decision | undefined => {
    if (now() <= opts.deadline) return undefined;
    const forced = opts.onTimeout === TimeoutAction.TIMEOUT_ACTION_FORCE_STOP_AND_COPY;
    return forced
      ? { decision: { action: 'stop', sendLive: false, reason: 'max-iterations' }, reason: `completion timeout after ${s.iteration} rounds: forcing stop-and-copy`, timedOut: true }
      : { decision: { action: 'abort', reason: 'completion timeout' }, reason: `completion timeout after ${s.iteration} rounds`, timedOut: true };
  };
  const decide = (s: PrecopyStats, d: PrecopyDecision): Decision => ({ decision: d, reason: describeDecision(d, s, opts.downtimeTargetMs), timedOut: false });
  return {
    name: inner.name,
    holdsJitteryPages: inner.holdsJitteryPages,
    skipsRedirtiedPages: inner.skipsRedirtiedPages,
    afterRound(s) {
      const d = timeout(s) ?? decide(s, inner.afterRound(s));
      if (d.decision.action !== 'continue') onDecision(d);
      return d.decision;
    },
    afterClean(s) {
      const d = timeout(s) ?? decide(s, inner.afterClean(s));
      onDecision(d);
      return d.decision;
    },
  };
}

export function describeDecision(d: PrecopyDecision, s: PrecopyStats, downtimeTargetMs: number): string {
  const remaining = s.held + s.toSend;
  switch (d.action) {
    case 'continue':
      return s.dirtyCount >= 0 ? `dirty ${s.dirtyCount}, ${s.toSend} to send${s.held > 0 ? `, ${s.held} held` : ''}` : 'next round';
    case 'abort':
      return d.reason;
    case 'stop':
      switch (d.reason) {
        case 'max-iterations':
          return `${s.iteration} iterations reached`;
        case 'dirty-below-threshold':
          // Xen counts the CLEAN's dirty pages; the layered rule counts what remains, held pages included.
          return s.held > 0 || s.dirtyCount < 0 || s.toSend !== s.dirtyCount ? `${remaining} pages remain < 50` : `dirty pages ${s.dirtyCount} < 50`;
        case 'sent-plus-skipped-below-threshold':
          return `pages sent+skipped ${s.lastRound.pagesSent + s.lastRound.pagesSkipped} < 50`;
        case 'total-sent-cap':
          return `${s.totalSent} pages sent, more than 3x the domain's memory`;
        case 'downtime-target-met':
          return `expected downtime ${Math.round(expectedDowntimeMs(remaining, s.bandwidthBps))} ms <= target ${downtimeTargetMs} ms`;
        case 'no-progress':
          return `no progress: ${remaining} pages remain and rounds stopped shrinking them`;
      }
  }
}
