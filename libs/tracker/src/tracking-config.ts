// What a migration's policy means for the tracker: whether the classifier holds jittery pages back
// (layered, with its W / D / demote parameters), and whether the streamer skips pages re-dirtied
// during a round (xen-legacy's to_skip). The stop rules themselves run in the coordinator.

import { DEFAULT_LAYERED_PARAMS, policyByName, type LayeredParams, type PolicyName } from '@ferry/policy';
import { invalidArgument } from '@ferry/runtime';

export interface TrackingPolicyRequest {
  policy: PolicyName;
  /** Layered only; a zero or missing value selects the default. */
  layered?: Partial<LayeredParams>;
}

export interface TrackingConfig {
  policy: PolicyName;
  holdJitteryPages: boolean;
  skipRedirtiedPages: boolean;
  /** The classifier's parameters (the defaults for the Xen policies, where holding is off). */
  layered: LayeredParams;
}

export function resolveTrackingConfig(request: TrackingPolicyRequest): TrackingConfig {
  const policy = policyByName(request.policy);
  const layered: LayeredParams = { ...DEFAULT_LAYERED_PARAMS };
  if (policy.holdsJitteryPages) {
    const given = request.layered ?? {};
    if (given.window) layered.window = given.window;
    if (given.threshold) layered.threshold = given.threshold;
    if (given.demoteAfter) layered.demoteAfter = given.demoteAfter;
    const problem = layeredProblem(layered);
    if (problem) throw invalidArgument('BAD_LAYERED_PARAMETERS', problem);
  }
  return {
    policy: request.policy,
    holdJitteryPages: policy.holdsJitteryPages,
    skipRedirtiedPages: policy.skipsRedirtiedPages,
    layered,
  };
}

/** The classifier keeps 8 rounds of history per page; these are the ranges it accepts. */
function layeredProblem(p: LayeredParams): string | undefined {
  if (!Number.isInteger(p.window) || p.window < 1 || p.window > 8) return `layered window must be 1..8, got ${p.window}`;
  if (!Number.isInteger(p.threshold) || p.threshold < 1 || p.threshold > p.window) {
    return `layered threshold must be 1..window (${p.window}), got ${p.threshold}`;
  }
  if (!Number.isInteger(p.demoteAfter) || p.demoteAfter < 1 || p.demoteAfter > 8) {
    return `layered demote_after must be 1..8, got ${p.demoteAfter}`;
  }
  return undefined;
}

export function sameTrackingConfig(a: TrackingConfig, b: TrackingConfig): boolean {
  return (
    a.policy === b.policy &&
    a.layered.window === b.layered.window &&
    a.layered.threshold === b.layered.threshold &&
    a.layered.demoteAfter === b.layered.demoteAfter
  );
}
