// The coordinator's public API against a real coordinator process and a real NATS server, with
// no hosts (or only registered-but-silent ones): input validation with clear statuses and
// reasons, health and reflection, and taking over migrations a previous coordinator left behind.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { NatsConnection } from '@nats-io/transport-node';
import { FerryClient, FerryClientError, migrationSummary } from '@ferry/client';
import { MigrationRecords, registerHost } from '@ferry/cluster';
import {
  FailureCode,
  Migration,
  MigrationOutcome,
  MigrationPhase,
  MigrationPolicy,
  PreflightCode,
  TimeoutAction,
  type MigrationEvent,
} from '@ferry/proto';
import { startNats, tempDir, waitFor, type NatsFixture } from '@ferry/testing';
import { startCoordinator, type CoordinatorProcess } from './fixtures';

const LONG = { timeout: 300_000 };

async function rejects(p: Promise<unknown>, code: grpc.status, reason: string): Promise<FerryClientError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FerryClientError, `expected a FerryClientError, got ${String(err)}`);
    assert.equal(err.codeName, grpc.status[code], `${err.codeName} ${err.reason}: ${err.message}`);
    assert.equal(err.reason, reason, err.message);
    return err;
  }
  assert.fail(`expected ${grpc.status[code]} ${reason}, but the call succeeded`);
}

async function collect(it: AsyncIterable<MigrationEvent>): Promise<MigrationEvent[]> {
  const out: MigrationEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** A migration left in the KV store as if by a coordinator that stopped (no events published). */
function leftBehind(id: string, extra: Partial<Migration> = {}): Migration {
  const created = new Date(Date.now() - 60_000);
  return Migration.fromPartial({
    id,
    domainName: 'ghost-domain',
    sourceHost: 'ghost-1',
    targetHost: 'ghost-2',
    policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17,
    options: { maxRounds: 5, completionTimeoutPerGibS: 800n, downtimeTargetMs: 300n, onTimeout: TimeoutAction.TIMEOUT_ACTION_ABORT },
    phase: MigrationPhase.MIGRATION_PHASE_PENDING,
    totals: {},
    phaseTransitions: [{ phase: MigrationPhase.MIGRATION_PHASE_PENDING, enteredAt: created }],
    epoch: 1n,
    createdAt: created,
    updatedAt: created,
    lastEventSequence: 1n,
    ...extra,
  });
}

describe('migration-coordinator API', LONG, () => {
  const tmp = tempDir('ferry-coordinator');
  let nats: NatsFixture;
  let nc: NatsConnection;
  let coordinator: CoordinatorProcess | undefined;
  let ferry: FerryClient;
  const silentHosts: Array<{ stop(): Promise<void> }> = [];

  before(async () => {
    nats = await startNats();
    nc = await nats.connect();
    // Two migrations a previous coordinator left in the store, for the takeover test.
    const records = await MigrationRecords.open(nc);
    await records.create(leftBehind('mig-left-queued'));
    await records.create(leftBehind('mig-left-cancelled', { cancelRequested: true, cancelReason: 'operator changed their mind', domainName: 'other' }));
    coordinator = await startCoordinator(tmp.path, nats.url);
    ferry = new FerryClient(coordinator.address);
  });

  after(async () => {
    ferry?.close();
    for (const h of silentHosts) await h.stop();
    await coordinator?.stop();
    await nats?.stop();
    tmp.remove();
  });

  test('serves health and reflection', async () => {
    const healthDef = grpc.loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { check: (r: object, cb: (e: Error | null, r: { status: string }) => void) => void } } } };
    };
    const health = new healthDef.grpc.health.v1.Health(coordinator!.address, grpc.credentials.createInsecure());
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.check({ service: 'ferry.v1.MigrationService' }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    health.close();
    assert.equal(res.status, 'SERVING');

    const reflectionProto = join(require.resolve('@grpc/reflection'), '..', '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
    const reflDef = grpc.loadPackageDefinition(loadSync(reflectionProto, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, { list_services_response?: { service: { name: string }[] } }> } } } };
    };
    const refl = new reflDef.grpc.reflection.v1.ServerReflection(coordinator!.address, grpc.credentials.createInsecure());
    const stream = refl.ServerReflectionInfo();
    const names = await new Promise<string[]>((resolve, reject) => {
      stream.on('data', (m) => resolve((m.list_services_response?.service ?? []).map((s: { name: string }) => s.name)));
      stream.on('error', reject);
      stream.write({ list_services: '' });
    });
    stream.end();
    refl.close();
    assert.ok(names.includes('ferry.v1.MigrationService'), names.join(', '));
  });

  test('StartMigration refuses malformed requests with INVALID_ARGUMENT and a reason', async () => {
    await rejects(ferry.startMigration({ domainName: '', targetHost: 'host-2' }), grpc.status.INVALID_ARGUMENT, 'MISSING_FIELD');
    await rejects(ferry.startMigration({ domainName: 'web', targetHost: '' }), grpc.status.INVALID_ARGUMENT, 'MISSING_FIELD');
    await rejects(ferry.startMigration({ domainName: 'web', sourceHost: 'host-1', targetHost: 'host-1' }), grpc.status.INVALID_ARGUMENT, 'SAME_HOST');
    await rejects(ferry.startMigration({ domainName: 'bad name', targetHost: 'host-2' }), grpc.status.INVALID_ARGUMENT, 'INVALID_NAME');
    await rejects(ferry.startMigration({ domainName: 'web', targetHost: 'host-2', policy: 42 as MigrationPolicy }), grpc.status.INVALID_ARGUMENT, 'INVALID_POLICY');
    const bad = [
      { layered: { window: 9 } },
      { layered: { window: 4, threshold: 5 } },
      { compactionHeadroomFraction: -0.5 },
      { downtimeTargetMs: 10_000_000 },
      { onTimeout: 7 as TimeoutAction },
      { maxRounds: 100_000 },
    ];
    for (const options of bad) {
      const err = await rejects(ferry.startMigration({ domainName: 'web', targetHost: 'host-2', options }), grpc.status.INVALID_ARGUMENT, 'INVALID_OPTIONS');
      assert.match(err.message, /options\./);
    }
  });

  test('StartMigration answers NOT_FOUND for unknown hosts and domains', async () => {
    const err = await rejects(ferry.startMigration({ domainName: 'web', targetHost: 'nowhere' }), grpc.status.NOT_FOUND, 'HOST_NOT_FOUND');
    assert.match(err.message, /nowhere/);
    // With no host registered, a domain without a named source is found nowhere.
    // Registered hosts whose services do not listen (port 1): their agents never answer.
    for (const name of ['silent-1', 'silent-2']) {
      silentHosts.push(
        await registerHost(nc, async () => ({
          name,
          driver: 'emulated',
          hostAgent: '127.0.0.1:1',
          memoryTracker: '127.0.0.1:1',
          balloonManager: '127.0.0.1:1',
          pageStreamer: '127.0.0.1:1',
          totalPages: 1024,
          freePages: 1024,
          ferryVersion: '0.1.0',
        })),
      );
    }
    await rejects(ferry.startMigration({ domainName: 'web', sourceHost: 'ghost', targetHost: 'silent-1' }), grpc.status.NOT_FOUND, 'HOST_NOT_FOUND');
    const missing = await rejects(ferry.startMigration({ domainName: 'web', targetHost: 'silent-1' }), grpc.status.NOT_FOUND, 'DOMAIN_NOT_FOUND');
    assert.match(missing.message, /silent-1, silent-2/); // names the hosts that did not answer
    // A registered source whose agent does not answer: UNAVAILABLE, not a hang.
    await rejects(ferry.startMigration({ domainName: 'web', sourceHost: 'silent-1', targetHost: 'silent-2' }), grpc.status.UNAVAILABLE, 'HOST_UNREACHABLE');
    // validate_only goes through the same checks.
    await rejects(ferry.startMigration({ domainName: 'web', targetHost: 'nowhere', validateOnly: true }), grpc.status.NOT_FOUND, 'HOST_NOT_FOUND');
  });

  test('queries: unknown ids are NOT_FOUND, hosts and domains are listed', async () => {
    await rejects(ferry.getMigration('mig-does-not-exist'), grpc.status.NOT_FOUND, 'MIGRATION_NOT_FOUND');
    await rejects(ferry.getMigration('not/a valid id'), grpc.status.NOT_FOUND, 'MIGRATION_NOT_FOUND');
    await rejects(ferry.cancelMigration('mig-does-not-exist'), grpc.status.NOT_FOUND, 'MIGRATION_NOT_FOUND');
    await rejects(collect(ferry.watch('mig-does-not-exist')), grpc.status.NOT_FOUND, 'MIGRATION_NOT_FOUND');
    await rejects(ferry.listMigrations({ pageToken: 'garbage' }), grpc.status.INVALID_ARGUMENT, 'INVALID_PAGE_TOKEN');
    await rejects(ferry.listDomains('nowhere'), grpc.status.NOT_FOUND, 'HOST_NOT_FOUND');
    await rejects(ferry.createDomain('', { name: 'x', memoryBytes: 1 << 24 }), grpc.status.INVALID_ARGUMENT, 'MISSING_FIELD');
    await rejects(ferry.createDomain('nowhere', { name: 'x', memoryBytes: 1 << 24 }), grpc.status.NOT_FOUND, 'HOST_NOT_FOUND');
    await rejects(ferry.createDomain('silent-1', { name: '', memoryBytes: 1 << 24 }), grpc.status.INVALID_ARGUMENT, 'MISSING_FIELD');

    const hosts = await ferry.listHosts();
    const silent = hosts.find((h) => h.host?.name === 'silent-1');
    assert.ok(silent, 'the registered host is listed');
    assert.equal(silent.ready, false, 'an agent that does not answer is not ready');
    const domains = await ferry.listDomains();
    assert.deepEqual(domains.unreachableHosts, ['silent-1', 'silent-2']);
    assert.deepEqual(domains.domains, []);
  });

  test('a restarted coordinator takes over what the previous one left, and announces it', async () => {
    // The queued migration is admitted; its hosts are not registered, so pre-flight rejects it.
    const events = await collect(ferry.watch('mig-left-queued'));
    const kinds = events.map((e) => e.event?.$case);
    assert.equal(kinds[kinds.length - 1], 'migrationFailed');
    assert.deepEqual(
      events.map((e) => Number(e.sequence)),
      events.map((_, i) => i + 1),
      'sequences 1, 2, 3, ... without gaps',
    );
    const m = await ferry.getMigration('mig-left-queued');
    assert.equal(m.phase, MigrationPhase.MIGRATION_PHASE_DONE);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_FAILED);
    assert.equal(m.epoch, 2n, 'taking over raised the epoch');
    assert.equal(m.failure?.code, FailureCode.FAILURE_CODE_PREFLIGHT_REJECTED);
    assert.deepEqual(
      m.failure?.preflightReasons.map((r) => [r.host, r.code]),
      [
        ['ghost-1', PreflightCode.PREFLIGHT_CODE_HOST_UNKNOWN],
        ['ghost-2', PreflightCode.PREFLIGHT_CODE_HOST_UNKNOWN],
      ],
    );
    assert.deepEqual(
      m.phaseTransitions.map((t) => t.phase),
      [MigrationPhase.MIGRATION_PHASE_PENDING, MigrationPhase.MIGRATION_PHASE_PREFLIGHT, MigrationPhase.MIGRATION_PHASE_DONE],
    );
    const summary = migrationSummary(m);
    assert.equal(summary.outcome, 'failed');
    assert.equal(summary.policy, 'xen-4.17');

    // The one cancelled while queued ends CANCELLED without running.
    const cancelled = await waitFor('the cancelled migration to end', async () => {
      const c = await ferry.getMigration('mig-left-cancelled');
      return c.phase === MigrationPhase.MIGRATION_PHASE_DONE ? c : undefined;
    });
    assert.equal(cancelled.outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED);
    assert.equal(cancelled.failure?.code, FailureCode.FAILURE_CODE_CANCELLED);
    const last = (await collect(ferry.watch('mig-left-cancelled'))).pop();
    assert.equal(last?.event?.$case, 'migrationCancelled');
    if (last?.event?.$case === 'migrationCancelled') assert.equal(last.event.migrationCancelled.reason, 'operator changed their mind');

    // Cancelling an ended migration: CANCELLED succeeds again, others are refused.
    assert.equal((await ferry.cancelMigration('mig-left-cancelled')).outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED);
    await rejects(ferry.cancelMigration('mig-left-queued'), grpc.status.FAILED_PRECONDITION, 'MIGRATION_ENDED');

    // Listing: newest first, filters, paging.
    const all = await ferry.listMigrations();
    assert.deepEqual(all.migrations.map((x) => x.id).sort(), ['mig-left-cancelled', 'mig-left-queued']);
    assert.ok(all.migrations.every((x) => x.rounds.length === 0));
    const failed = await ferry.listMigrations({ outcome: MigrationOutcome.MIGRATION_OUTCOME_FAILED });
    assert.deepEqual(failed.migrations.map((x) => x.id), ['mig-left-queued']);
    assert.equal((await ferry.listMigrations({ activeOnly: true })).migrations.length, 0);
    const page1 = await ferry.listMigrations({ pageSize: 1 });
    assert.equal(page1.migrations.length, 1);
    assert.notEqual(page1.nextPageToken, '');
    const page2 = await ferry.listMigrations({ pageSize: 1, pageToken: page1.nextPageToken });
    assert.equal(page2.migrations.length, 1);
    assert.equal(page2.nextPageToken, '');
    assert.notEqual(page1.migrations[0].id, page2.migrations[0].id);

    // A watcher that resumes after the events it saw gets only the rest (here: nothing).
    const seen = events.length;
    assert.deepEqual(await collect(ferry.watch('mig-left-queued', { afterSequence: seen })), []);
  });

  test('a second coordinator over the same store finds everything ended and leaves it alone', async () => {
    const second = await startCoordinator(tmp.path, nats.url, {}, 'coordinator-2');
    const other = new FerryClient(second.address);
    try {
      const m = await other.getMigration('mig-left-queued');
      assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_FAILED);
      assert.equal(m.epoch, 2n);
      const events = await collect(other.watch('mig-left-queued'));
      assert.equal(events.filter((e) => e.event?.$case === 'migrationFailed').length, 1, 'no terminal event published twice');
    } finally {
      other.close();
      await second.stop();
    }
  });
});
