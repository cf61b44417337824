// The journal's hold on publishing (the downtime window's events wait until the guest runs),
// against a real nats-server: record writes go on while held, events follow on release or flush.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import type { NatsConnection } from '@nats-io/transport-node';
import { MigrationEvents, MigrationRecords } from '@ferry/cluster';
import { Migration, MigrationPhase } from '@ferry/proto';
import { createLogger } from '@ferry/runtime';
import { MigrationJournal } from '../src/journal';
import { startNats, waitFor, type NatsFixture } from '@ferry/testing';

const P = MigrationPhase;

describe('migration journal: holding events for the downtime window', { timeout: 120_000 }, () => {
  let nats: NatsFixture;
  let nc: NatsConnection;
  let records: MigrationRecords;
  let events: MigrationEvents;

  before(async () => {
    nats = await startNats();
    nc = await nats.connect();
    records = await MigrationRecords.open(nc);
    events = await MigrationEvents.open(nc);
  });

  after(async () => {
    await nats?.stop();
  });

  async function journalFor(id: string): Promise<MigrationJournal> {
    const m = Migration.fromPartial({ id, phase: P.MIGRATION_PHASE_PENDING, createdAt: new Date() });
    const revision = await records.create(m);
    const logger = createLogger('journal-test', {});
    logger.level = 'silent';
    return new MigrationJournal(records, events, m, revision, logger, () => ROOT_CONTEXT);
  }

  test('writes go on while events wait; a release publishes them in order', async () => {
    const journal = await journalFor('hold-1');
    await journal.enterPhase(P.MIGRATION_PHASE_PREFLIGHT, 'checks');
    await journal.flush();
    assert.equal(await events.lastSequence('hold-1'), 1n);

    journal.holdPublishing();
    await journal.enterPhase(P.MIGRATION_PHASE_PREPARING_TARGET, 'target');
    await journal.enterPhase(P.MIGRATION_PHASE_PRECOPY, 'rounds');
    // Both writes are stored (with the sequence of their events) ...
    const stored = await records.get('hold-1');
    assert.equal(stored?.migration.phase, P.MIGRATION_PHASE_PRECOPY);
    assert.equal(stored?.migration.lastEventSequence, 3n);
    // ... and their events are not published: the hold means no publish call is made at all.
    await nc.flush();
    assert.equal(await events.lastSequence('hold-1'), 1n);

    journal.releasePublishing();
    await waitFor('the held events', async () => (await events.lastSequence('hold-1')) === 3n);
    const seen: bigint[] = [];
    for await (const { event } of events.read('hold-1')) seen.push(event.sequence);
    assert.deepEqual(seen, [1n, 2n, 3n]);
  });

  test('flush ends a hold, so a migration that ends during one leaves nothing unannounced', async () => {
    const journal = await journalFor('hold-2');
    journal.holdPublishing();
    journal.holdPublishing(); // a second hold is the same hold
    await journal.enterPhase(P.MIGRATION_PHASE_DONE, 'cancelled while queued');
    await journal.flush();
    assert.equal(await events.lastSequence('hold-2'), 1n);
  });
});
