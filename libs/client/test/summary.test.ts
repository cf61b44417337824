import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { Migration, MigrationOutcome, MigrationPhase, MigrationPolicy } from '@ferry/proto';
import { FerryClientError, migrationSummary, policyFromName, policyToName, POLICY_NAMES } from '../src';

test('the CLI summary of a migration: flat, snake_case, JS numbers, names', () => {
  const m = Migration.fromPartial({
    id: 'mig-1',
    domainName: 'web-1',
    sourceHost: 'host-1',
    targetHost: 'host-2',
    policy: MigrationPolicy.MIGRATION_POLICY_LAYERED,
    phase: MigrationPhase.MIGRATION_PHASE_DONE,
    outcome: MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    totals: {
      rounds: 6,
      pagesSent: 70_000n,
      bytesSent: 287_000_000n,
      zeroPages: 1200n,
      deferredPages: 310n,
      balloonReleasedPages: 30_000n,
      totalMs: 4321n,
      downtimeMs: 87n,
      memoryVerified: true,
    },
  });
  assert.deepEqual(migrationSummary(m), {
    id: 'mig-1',
    domain: 'web-1',
    source: 'host-1',
    target: 'host-2',
    policy: 'layered',
    outcome: 'rolled_back',
    rounds: 6,
    pages_sent: 70_000,
    bytes_sent: 287_000_000,
    zero_pages: 1200,
    deferred_pages: 310,
    balloon_released_pages: 30_000,
    total_ms: 4321,
    downtime_ms: 87,
    memory_verified: true,
    trace_id: '0af7651916cd43dd8448eb211c80319c',
  });
  const running = migrationSummary(Migration.fromPartial({ policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17 }));
  assert.equal(running.outcome, 'running');
  assert.equal(running.rounds, 0);
  assert.equal(running.memory_verified, false);
});

test('policy names round-trip', () => {
  for (const name of POLICY_NAMES) assert.equal(policyToName(policyFromName(name)), name);
  assert.throws(() => policyFromName('xen-4.2'), RangeError);
});

test('errors carry the status name and the reason', () => {
  const e = new FerryClientError(status.FAILED_PRECONDITION, 'MIGRATION_IN_FLIGHT', 'domain web-1 is already migrating');
  assert.equal(e.codeName, 'FAILED_PRECONDITION');
  assert.deepEqual(e.toJSON(), { code: 'FAILED_PRECONDITION', reason: 'MIGRATION_IN_FLIGHT', message: 'domain web-1 is already migrating' });
});
