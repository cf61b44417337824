// The CLI's JSON summary of a migration: flat, snake_case, numbers as JS numbers, names instead
// of enum values ("xen-4.17", "succeeded"). `ferry migrate --json` prints exactly this.

import { MigrationOutcome, MigrationPhase, MigrationPolicy, type Migration } from '@ferry/proto';

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
  /** Where the downtime went, from the phase timestamps and the final round (absent if it never stopped). */
  downtime_breakdown_ms?: DowntimeBreakdown;
}

export interface DowntimeBreakdown {
  /** From stop-and-copy until the guest was suspended (the control/shutdown handshake). */
  suspend: number;
  /** The final round: the last dirty pages and every held page. */
  final_round: number;
  /** vCPU state to the target and the durable commit record. */
  state_and_commit: number;
  /** Memory digests on both sides (--verify). */
  verify: number;
  /** Unpausing the guest on the target. */
  resume: number;
}

/** Splits the downtime using the record's phase timestamps and the final round's start and length. */
export function downtimeBreakdown(m: Migration): DowntimeBreakdown | undefined {
  const at = (phase: MigrationPhase) => m.phaseTransitions.find((p) => p.phase === phase)?.enteredAt?.getTime();
  const stop = at(MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY);
  const verifying = at(MigrationPhase.MIGRATION_PHASE_VERIFYING);
  const committed = at(MigrationPhase.MIGRATION_PHASE_COMMITTED);
  const resuming = at(MigrationPhase.MIGRATION_PHASE_RESUMING_TARGET);
  const running = at(MigrationPhase.MIGRATION_PHASE_CLEANING_UP);
  const final = m.rounds.find((r) => r.final);
  const finalStart = final?.startedAt?.getTime();
  if (stop === undefined || committed === undefined || resuming === undefined || running === undefined || !final || finalStart === undefined) return undefined;
  const finalEnd = finalStart + Number(final.elapsedMs);
  const verify = verifying !== undefined ? committed - verifying : 0;
  return {
    suspend: Math.max(0, finalStart - stop),
    final_round: Number(final.elapsedMs),
    state_and_commit: Math.max(0, committed - finalEnd - verify),
    verify,
    resume: Math.max(0, running - resuming),
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
