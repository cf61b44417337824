// The CLI's JSON summary of a migration: flat, snake_case, numbers as JS numbers, names instead
// of enum values ("xen-4.17", "succeeded"). `ferry migrate --json` prints exactly this.

import { MigrationOutcome, MigrationPolicy, type Migration } from '@ferry/proto';

export type PolicyName = 'xen-4.17' | 'xen-legacy' | 'layered';
/** "running" while the migration has not ended. */
export type OutcomeName = 'succeeded' | 'failed' | 'cancelled' | 'rolled_back' | 'running';

export interface MigrationSummary {
  id: string;
  domain: string;
  source: string;
  target: string;
  policy: PolicyName;
  outcome: OutcomeName;
  rounds: number;
  pages_sent: number;
  bytes_sent: number;
  zero_pages: number;
  deferred_pages: number;
  balloon_released_pages: number;
  total_ms: number;
  downtime_ms: number;
  memory_verified: boolean;
  trace_id: string;
  /** Where the downtime went, as the coordinator timed it (absent if it never stopped, or after a takeover). */
  downtime_breakdown_ms?: DowntimeBreakdown;
}

export interface DowntimeBreakdown {
  /** From the start of the suspend until the final round's call (the control/shutdown handshake). */
  suspend: number;
  /** The final round's call: the FINAL CLEAN, the last dirty pages and held pages, the vCPU state. */
  final_round: number;
  /** Memory digests on both sides (--verify). */
  verify: number;
  /** Writing the commit record, until the unpause was sent. */
  commit: number;
  /** Unpausing the guest on the target, until that returned. */
  resume: number;
}

/** The coordinator's timing of the downtime window (parts that add up to downtime_ms), if it has one. */
export function downtimeBreakdown(m: Migration): DowntimeBreakdown | undefined {
  const p = m.totals?.downtimeParts;
  if (!p) return undefined;
  return {
    suspend: Number(p.suspendMs),
    final_round: Number(p.finalRoundMs),
    verify: Number(p.verifyMs),
    commit: Number(p.commitMs),
    resume: Number(p.resumeMs),
  };
}

export const POLICY_NAMES: readonly PolicyName[] = ['xen-4.17', 'xen-legacy', 'layered'];

export function policyToName(p: MigrationPolicy): PolicyName {
  switch (p) {
    case MigrationPolicy.MIGRATION_POLICY_XEN_4_17:
      return 'xen-4.17';
    case MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY:
      return 'xen-legacy';
    case MigrationPolicy.MIGRATION_POLICY_LAYERED:
      return 'layered';
    default:
      throw new RangeError(`not a migration policy: ${p}`);
  }
}

export function policyFromName(name: string): MigrationPolicy {
  switch (name) {
    case 'xen-4.17':
      return MigrationPolicy.MIGRATION_POLICY_XEN_4_17;
    case 'xen-legacy':
      return MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY;
    case 'layered':
      return MigrationPolicy.MIGRATION_POLICY_LAYERED;
    default:
      throw new RangeError(`unknown policy "${name}" (expected ${POLICY_NAMES.join(', ')})`);
  }
}

export function outcomeToName(o: MigrationOutcome): OutcomeName {
  switch (o) {
    case MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED:
      return 'succeeded';
    case MigrationOutcome.MIGRATION_OUTCOME_FAILED:
      return 'failed';
    case MigrationOutcome.MIGRATION_OUTCOME_CANCELLED:
      return 'cancelled';
    case MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK:
      return 'rolled_back';
    default:
      return 'running';
  }
}

export function migrationSummary(m: Migration): MigrationSummary {
  const t = m.totals;
  const n = (v: bigint | number | undefined) => Number(v ?? 0);
  return {
    id: m.id,
    domain: m.domainName,
    source: m.sourceHost,
    target: m.targetHost,
    policy: policyToName(m.policy),
    outcome: outcomeToName(m.outcome),
    rounds: n(t?.rounds),
    pages_sent: n(t?.pagesSent),
    bytes_sent: n(t?.bytesSent),
    zero_pages: n(t?.zeroPages),
    deferred_pages: n(t?.deferredPages),
    balloon_released_pages: n(t?.balloonReleasedPages),
    total_ms: n(t?.totalMs),
    downtime_ms: n(t?.downtimeMs),
    memory_verified: t?.memoryVerified ?? false,
    trace_id: m.traceId,
    ...optional('downtime_breakdown_ms', downtimeBreakdown(m)),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
