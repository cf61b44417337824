// @ferry/tracker: dirty-page tracking on a migration's source host (MemoryTrackerService's logic).
export { MemoryTracker, DEFAULT_PROBE_DURATION_MS, DEFAULT_PROBE_INTERVAL_MS, MAX_PROBE_DURATION_MS, type Fence, type ProbeRequest, type StartTrackingResult } from './memory-tracker';
export { TrackingSession, type RoundCounts, type SendSet } from './tracking-session';
export { resolveTrackingConfig, type TrackingConfig, type TrackingPolicyRequest } from './tracking-config';
export { probeDirtyRate, type DirtyRateProbeOptions, type DirtyRateProbeResult } from './dirty-rate-probe';
export { enableLogDirty } from './log-dirty';
