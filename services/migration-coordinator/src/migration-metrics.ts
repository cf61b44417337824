// The coordinator's Prometheus metrics, in the spirit of KubeVirt's kubevirt_vmi_migration_*.
// They are fed by the migration events themselves (MigrationEvents.follow: every event from the
// time this process started, each handled in a CONSUMER span of its migration's trace), so they
// say exactly what the stream says. Events published before the process started are not
// replayed: counters start at 0, as Prometheus counters do after a restart.
//
// Per migration (label migration_id), kept for the 50 most recent ended migrations and every
// running one:
//   ferry_migration_info{migration_id,domain,source,target,policy} 1
//   ferry_migration_data_processed_bytes   bytes sent so far
//   ferry_migration_data_remaining_bytes   what the policy expects still to send after the last
//                                          round (expected downtime x measured throughput; 0 once
//                                          the final round is sent)
//   ferry_migration_dirty_memory_rate_pages  dirty pages per second in the last round
//   ferry_migration_memory_transfer_rate_bytes  bytes per second of the last round
// Totals:
//   ferry_migration_rounds_total{policy}, ferry_migration_downtime_seconds{policy} (histogram),
//   ferry_migrations_in_phase{phase} (running migrations), ferry_migrations_total{outcome}.

import { MigrationOutcome, MigrationPhase, type Migration, type MigrationEvent } from '@ferry/proto';
import { outcomeName, phaseName, policyName } from '@ferry/coordinator';
import { MetricsRegistry } from '@ferry/telemetry';

/** Ended migrations whose series are kept (the oldest are dropped first). */
export const ENDED_MIGRATIONS_KEPT = 50;

const RUNNING_PHASES = Object.values(MigrationPhase).filter(
  (p): p is MigrationPhase => typeof p === 'number' && p !== MigrationPhase.MIGRATION_PHASE_UNSPECIFIED && p !== MigrationPhase.MIGRATION_PHASE_DONE,
);
const OUTCOMES = [
  MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED,
  MigrationOutcome.MIGRATION_OUTCOME_FAILED,
  MigrationOutcome.MIGRATION_OUTCOME_CANCELLED,
  MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK,
];

const label = (name: string) => name.toLowerCase();

interface KnownMigration {
  id: string;
  phase: MigrationPhase;
  policy: string;
  lastSequence: bigint;
  ended: boolean;
  info?: { domain: string; source: string; target: string; policy: string };
}

export class MigrationMetrics {
  readonly registry = new MetricsRegistry();
  private readonly known = new Map<string, KnownMigration>();
  /** Ended migrations, oldest first. */
  private readonly ended: string[] = [];

  private readonly info = this.registry.gauge({
    name: 'ferry_migration_info',
    help: 'A migration and what it moves where (value 1): join on migration_id.',
    labelNames: ['migration_id', 'domain', 'source', 'target', 'policy'],
  });
  private readonly processed = this.registry.gauge({
    name: 'ferry_migration_data_processed_bytes',
    help: 'Bytes a migration has sent so far (all rounds, vCPU state included once sent).',
    labelNames: ['migration_id'],
  });
  private readonly remaining = this.registry.gauge({
    name: 'ferry_migration_data_remaining_bytes',
    help: "Bytes the policy expects still to send after the migration's last round (0 once the final round is sent).",
    labelNames: ['migration_id'],
  });
  private readonly dirtyRate = this.registry.gauge({
    name: 'ferry_migration_dirty_memory_rate_pages',
    help: "Pages per second the guest dirtied during the migration's last round.",
    labelNames: ['migration_id'],
  });
  private readonly transferRate = this.registry.gauge({
    name: 'ferry_migration_memory_transfer_rate_bytes',
    help: "Bytes per second the migration's last round was sent at.",
    labelNames: ['migration_id'],
  });
  private readonly rounds = this.registry.counter({
    name: 'ferry_migration_rounds_total',
    help: 'Rounds completed (pre-copy rounds and final rounds), by policy.',
    labelNames: ['policy'],
  });
  private readonly downtime = this.registry.histogram({
    name: 'ferry_migration_downtime_seconds',
    help: 'Downtime of succeeded migrations (guest suspended on the source until it runs on the target), by policy.',
    labelNames: ['policy'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  private readonly outcomes = this.registry.counter({
    name: 'ferry_migrations_total',
    help: 'Migrations ended, by outcome.',
    labelNames: ['outcome'],
  });

  constructor() {
    this.registry.observed({
      name: 'ferry_migrations_in_phase',
      help: 'Running migrations, by the phase they are in.',
      type: 'gauge',
      labelNames: ['phase'],
      collect: () =>
        RUNNING_PHASES.map((phase) => ({
          labels: { phase: label(phaseName(phase)) },
          value: [...this.known.values()].filter((m) => !m.ended && m.phase === phase).length,
        })),
    });
    for (const o of OUTCOMES) this.outcomes.touch({ outcome: label(outcomeName(o)) });
  }

  /** Takes one event into account (an event seen before, by sequence, is ignored). */
  record(e: MigrationEvent): void {
    const m = this.migration(e.migrationId);
    if (e.sequence <= m.lastSequence) return;
    m.lastSequence = e.sequence;
    if (e.migration) this.learn(m, e.migration);
    const id = { migration_id: m.id };
    switch (e.event?.$case) {
      case 'phaseChanged':
        m.phase = e.event.phaseChanged.to;
        break;
      case 'roundCompleted': {
        const { round, totals } = e.event.roundCompleted;
        this.rounds.inc(1, { policy: m.policy });
        if (totals) this.processed.set(Number(totals.bytesSent), id);
        if (round) {
          const bytesPerSecond = Number(round.throughputBps) / 8;
          this.dirtyRate.set(round.dirtyRate, id);
          this.transferRate.set(bytesPerSecond, id);
          this.remaining.set(round.final ? 0 : (Number(round.expectedDowntimeMs) / 1000) * bytesPerSecond, id);
        }
        break;
      }
      case 'migrationCompleted': {
        const totals = e.event.migrationCompleted.totals;
        if (totals) {
          this.processed.set(Number(totals.bytesSent), id);
          this.downtime.observe(Number(totals.downtimeMs) / 1000, { policy: m.policy });
        }
        this.end(m, MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED);
        break;
      }
      case 'migrationFailed':
        this.end(m, e.event.migrationFailed.outcome || MigrationOutcome.MIGRATION_OUTCOME_FAILED);
        break;
      case 'migrationCancelled':
        this.end(m, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED);
        break;
    }
  }

  private migration(id: string): KnownMigration {
    let m = this.known.get(id);
    if (!m) {
      m = { id, phase: MigrationPhase.MIGRATION_PHASE_UNSPECIFIED, policy: 'unknown', lastSequence: 0n, ended: false };
      this.known.set(id, m);
    }
    return m;
  }

  /** Facts from a record snapshot: the policy and the info series. */
  private learn(m: KnownMigration, r: Migration): void {
    m.policy = policyLabel(r);
    const info = { domain: r.domainName, source: r.sourceHost, target: r.targetHost, policy: m.policy };
    if (m.info && JSON.stringify(m.info) === JSON.stringify(info)) return;
    if (m.info) this.info.remove({ migration_id: m.id, ...m.info });
    m.info = info;
    this.info.set(1, { migration_id: m.id, ...info });
  }

  private end(m: KnownMigration, outcome: MigrationOutcome): void {
    if (m.ended) return;
    m.ended = true;
    m.phase = MigrationPhase.MIGRATION_PHASE_DONE;
    this.remaining.set(0, { migration_id: m.id });
    this.outcomes.inc(1, { outcome: label(outcomeName(outcome)) });
    this.ended.push(m.id);
    while (this.ended.length > ENDED_MIGRATIONS_KEPT) this.forget(this.ended.shift()!);
  }

  private forget(id: string): void {
    const m = this.known.get(id);
    if (!m) return;
    this.known.delete(id);
    const labels = { migration_id: id };
    for (const g of [this.processed, this.remaining, this.dirtyRate, this.transferRate]) g.remove(labels);
    if (m.info) this.info.remove({ migration_id: id, ...m.info });
  }
}

function policyLabel(m: Migration): string {
  try {
    return policyName(m.policy);
  } catch {
    return 'unknown';
  }
}
