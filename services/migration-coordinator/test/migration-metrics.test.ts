// The coordinator's metrics from a migration's events (pure: events in, exposition out).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Migration, MigrationEvent, MigrationOutcome, MigrationPhase, MigrationPolicy, MigrationTotals, RoundRecord } from '@ferry/proto';
import { parseExposition } from '../../../libs/telemetry/test/support/exposition-parser';
import { ENDED_MIGRATIONS_KEPT, MigrationMetrics } from '../src/migration-metrics';

const record = (id: string) =>
  Migration.fromPartial({ id, domainName: 'vm1', sourceHost: 'host-1', targetHost: 'host-2', policy: MigrationPolicy.MIGRATION_POLICY_LAYERED });

function events(id: string): MigrationEvent[] {
  let seq = 0n;
  const e = (event: MigrationEvent['event'], withRecord = false): MigrationEvent => ({
    ...MigrationEvent.fromPartial({ migrationId: id, sequence: ++seq }),
    event,
    ...(withRecord ? { migration: record(id) } : {}),
  });
  const phase = (to: MigrationPhase) => e({ $case: 'phaseChanged', phaseChanged: { to, from: MigrationPhase.MIGRATION_PHASE_UNSPECIFIED, reason: '' } }, true);
  const round = (n: number, final: boolean, bytes: bigint) =>
    e({
      $case: 'roundCompleted',
      roundCompleted: {
        round: RoundRecord.fromPartial({ round: n, final, dirtyRate: 250, throughputBps: 800_000_000n, expectedDowntimeMs: final ? 0n : 20n }),
        totals: MigrationTotals.fromPartial({ bytesSent: bytes }),
      },
    });
  return [
    phase(MigrationPhase.MIGRATION_PHASE_PENDING),
    phase(MigrationPhase.MIGRATION_PHASE_PRECOPY),
    round(0, false, 1_000_000n),
    round(1, false, 1_200_000n),
    phase(MigrationPhase.MIGRATION_PHASE_STOP_AND_COPY),
    round(2, true, 1_250_000n),
    phase(MigrationPhase.MIGRATION_PHASE_DONE),
    e({ $case: 'migrationCompleted', migrationCompleted: { totals: MigrationTotals.fromPartial({ bytesSent: 1_260_000n, downtimeMs: 120n }) } }, true),
  ];
}

describe('coordinator metrics from events', () => {
  test('a running migration, then its end', () => {
    const metrics = new MigrationMetrics();
    const all = events('mig-1');
    for (const e of all.slice(0, 4)) metrics.record(e);
    let x = parseExposition(metrics.registry.render());
    const id = { migration_id: 'mig-1' };
    assert.equal(x.value('ferry_migrations_in_phase', { phase: 'precopy' }), 1);
    assert.equal(x.value('ferry_migration_data_processed_bytes', id), 1_200_000);
    // 20 ms at 100 MB/s still to send.
    assert.equal(x.value('ferry_migration_data_remaining_bytes', id), 2_000_000);
    assert.equal(x.value('ferry_migration_memory_transfer_rate_bytes', id), 100_000_000);
    assert.equal(x.value('ferry_migration_dirty_memory_rate_pages', id), 250);
    assert.equal(x.value('ferry_migration_info', { ...id, domain: 'vm1', source: 'host-1', target: 'host-2', policy: 'layered' }), 1);

    for (const e of all.slice(4)) metrics.record(e);
    for (const e of all) metrics.record(e); // seen already: ignored
    x = parseExposition(metrics.registry.render());
    assert.equal(x.value('ferry_migrations_in_phase', { phase: 'precopy' }), 0);
    assert.equal(x.value('ferry_migrations_in_phase', { phase: 'stop_and_copy' }), 0);
    assert.equal(x.value('ferry_migrations_total', { outcome: 'succeeded' }), 1);
    assert.equal(x.value('ferry_migrations_total', { outcome: 'rolled_back' }), 0);
    assert.equal(x.value('ferry_migration_rounds_total', { policy: 'layered' }), 3);
    assert.equal(x.value('ferry_migration_downtime_seconds_count', { policy: 'layered' }), 1);
    assert.equal(x.value('ferry_migration_downtime_seconds_bucket', { policy: 'layered', le: '0.1' }), 0);
    assert.equal(x.value('ferry_migration_downtime_seconds_bucket', { policy: 'layered', le: '0.25' }), 1);
    assert.equal(x.value('ferry_migration_data_processed_bytes', id), 1_260_000);
    assert.equal(x.value('ferry_migration_data_remaining_bytes', id), 0);
  });

  test('a failed migration counts by its outcome; old ended migrations are forgotten', () => {
    const metrics = new MigrationMetrics();
    metrics.record(
      MigrationEvent.fromPartial({
        migrationId: 'mig-f',
        sequence: 1n,
        migration: record('mig-f'),
        event: { $case: 'migrationFailed', migrationFailed: { outcome: MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK } },
      }),
    );
    for (let i = 0; i < ENDED_MIGRATIONS_KEPT + 5; i++) for (const e of events(`mig-${i}`)) metrics.record(e);
    const x = parseExposition(metrics.registry.render());
    assert.equal(x.value('ferry_migrations_total', { outcome: 'rolled_back' }), 1);
    assert.equal(x.value('ferry_migrations_total', { outcome: 'succeeded' }), ENDED_MIGRATIONS_KEPT + 5);
    assert.equal(x.samples('ferry_migration_info').length, ENDED_MIGRATIONS_KEPT);
    assert.equal(x.value('ferry_migration_data_processed_bytes', { migration_id: 'mig-0' }), undefined, 'the oldest are dropped');
    assert.equal(x.value('ferry_migration_data_processed_bytes', { migration_id: `mig-${ENDED_MIGRATIONS_KEPT + 4}` }), 1_260_000);
  });
});
