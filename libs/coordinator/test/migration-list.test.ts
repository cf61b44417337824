import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ListMigrationsRequest, Migration, MigrationOutcome, MigrationPhase } from '@ferry/proto';
import { FerryError } from '@ferry/runtime';
import { pageOf } from '../src';

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s));
const all = [
  Migration.fromPartial({ id: 'a', domainName: 'web', sourceHost: 'h1', targetHost: 'h2', phase: MigrationPhase.MIGRATION_PHASE_DONE, outcome: MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, createdAt: at(1), rounds: [{ round: 0 }] }),
  Migration.fromPartial({ id: 'b', domainName: 'db', sourceHost: 'h2', targetHost: 'h3', phase: MigrationPhase.MIGRATION_PHASE_PRECOPY, createdAt: at(2) }),
  Migration.fromPartial({ id: 'c', domainName: 'web', sourceHost: 'h2', targetHost: 'h1', phase: MigrationPhase.MIGRATION_PHASE_DONE, outcome: MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK, createdAt: at(3) }),
  Migration.fromPartial({ id: 'd', domainName: 'web', sourceHost: 'h3', targetHost: 'h4', phase: MigrationPhase.MIGRATION_PHASE_PENDING, createdAt: at(3) }),
];
const q = (p: Partial<ListMigrationsRequest>) => ListMigrationsRequest.fromPartial(p);
const ids = (p: Partial<ListMigrationsRequest>) => pageOf(all, q(p)).migrations.map((m) => m.id);

test('newest first, ties by id; round records left out', () => {
  assert.deepEqual(ids({}), ['d', 'c', 'b', 'a']);
  assert.deepEqual(pageOf(all, q({})).migrations.find((m) => m.id === 'a')?.rounds, []);
});

test('filters combine with AND', () => {
  assert.deepEqual(ids({ domainName: 'web' }), ['d', 'c', 'a']);
  assert.deepEqual(ids({ host: 'h1' }), ['c', 'a']);
  assert.deepEqual(ids({ host: 'h1', outcome: MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED }), ['a']);
  assert.deepEqual(ids({ activeOnly: true }), ['d', 'b']);
  assert.deepEqual(ids({ phase: MigrationPhase.MIGRATION_PHASE_PRECOPY }), ['b']);
});

test('pages follow each other without gaps or repeats', () => {
  const seen: string[] = [];
  let token = '';
  for (;;) {
    const page = pageOf(all, q({ pageSize: 3, pageToken: token }));
    seen.push(...page.migrations.map((m) => m.id));
    if (!page.nextPageToken) break;
    token = page.nextPageToken;
  }
  assert.deepEqual(seen, ['d', 'c', 'b', 'a']);
  assert.throws(
    () => pageOf(all, q({ pageToken: 'not-a-token' })),
    (e: unknown) => e instanceof FerryError && e.code === status.INVALID_ARGUMENT && e.reason === 'INVALID_PAGE_TOKEN',
  );
});
