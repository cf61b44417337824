// Migration records (KV with revision compare-and-set) and events (JetStream) against a real
// nats-server.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, propagation, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { NatsConnection } from '@nats-io/transport-node';
import { Migration, MigrationEvent, MigrationPhase } from '@ferry/proto';
import {
  MigrationEvents,
  MigrationRecordConflict,
  MigrationRecordExists,
  MigrationRecords,
  isTerminalEvent,
  type StoredEvent,
} from '../src';
import { startNats, waitFor, type NatsFixture } from '@ferry/testing';

const LONG = { timeout: 120_000 };

function phaseEvent(migrationId: string, sequence: number, to: MigrationPhase): MigrationEvent {
  return MigrationEvent.fromPartial({
    migrationId,
    sequence: BigInt(sequence),
    time: new Date(),
    event: { $case: 'phaseChanged', phaseChanged: { from: to - 1, to, reason: `step ${sequence}` } },
  });
}

function completedEvent(migrationId: string, sequence: number): MigrationEvent {
  return MigrationEvent.fromPartial({
    migrationId,
    sequence: BigInt(sequence),
    time: new Date(),
    event: { $case: 'migrationCompleted', migrationCompleted: { totals: { rounds: 3 } } },
  });
}

async function collect(it: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('migration records and events in NATS', LONG, () => {
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

  test('a record round-trips, and a write on a stale revision is refused', async () => {
    const m = Migration.fromPartial({
      id: 'mig-cas',
      domainName: 'web-1',
      sourceHost: 'host-1',
      targetHost: 'host-2',
      phase: MigrationPhase.MIGRATION_PHASE_PENDING,
      epoch: 1n,
      memoryBytes: 256n * 1024n * 1024n,
      createdAt: new Date('2025-01-02T03:04:05.678Z'),
    });
    const rev1 = await records.create(m);
    await assert.rejects(records.create(m), MigrationRecordExists);

    const read = await records.get('mig-cas');
    assert.ok(read);
    assert.equal(read.revision, rev1);
    assert.deepEqual(read.migration, m);

    const rev2 = await records.update({ ...m, phase: MigrationPhase.MIGRATION_PHASE_PREFLIGHT }, rev1);
    assert.ok(rev2 > rev1);
    // A writer that still holds revision 1 loses: its change is refused, not merged.
    await assert.rejects(records.update({ ...m, phase: MigrationPhase.MIGRATION_PHASE_DONE }, rev1), MigrationRecordConflict);
    const now = await records.get('mig-cas');
    assert.equal(now?.migration.phase, MigrationPhase.MIGRATION_PHASE_PREFLIGHT);
    assert.equal(now?.revision, rev2);

    assert.equal(await records.get('no-such-migration'), undefined);
    assert.equal(await records.get('not a valid id'), undefined);
    assert.deepEqual(
      (await records.list()).map((r) => r.migration.id),
      ['mig-cas'],
    );
  });

  test('an idempotency key binds to the first migration that claims it', async () => {
    assert.equal(await records.lookupRequestId('client-key-1'), undefined);
    assert.equal(await records.claimRequestId('client-key-1', 'mig-a'), 'mig-a');
    assert.equal(await records.claimRequestId('client-key-1', 'mig-b'), 'mig-a');
    assert.equal(await records.lookupRequestId('client-key-1'), 'mig-a');
  });

  test('events come back in order, a re-published sequence is dropped, traceparent travels', async () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED });
    try {
      const id = 'mig-events';
      for (let seq = 1; seq <= 5; seq++) {
        const ack = await events.publish(phaseEvent(id, seq, seq), ctx);
        assert.equal(ack.duplicate, false);
      }
      // A retry of sequence 3 (say, after a lost ack) is recognised and not stored again.
      const retry = await events.publish(phaseEvent(id, 3, 3), ctx);
      assert.equal(retry.duplicate, true);
      // Another migration's events do not leak into this one's.
      await events.publish(phaseEvent('mig-other', 1, 1));

      const all = await collect(events.read(id));
      assert.deepEqual(
        all.map((e) => Number(e.event.sequence)),
        [1, 2, 3, 4, 5],
      );
      assert.equal(all[0].event.event?.$case, 'phaseChanged');
      assert.equal(all[0].subject, 'ferry.migrations.mig-events.phase_changed');
      assert.match(all[0].traceparent ?? '', new RegExp(`^00-${traceId}-b7ad6b7169203331-01$`));
      const tail = await collect(events.read(id, { afterSequence: 3 }));
      assert.deepEqual(
        tail.map((e) => Number(e.event.sequence)),
        [4, 5],
      );
      assert.equal(await events.lastSequence(id), 5n);
      assert.equal(await events.lastSequence('mig-none'), 0n);
      assert.deepEqual(await collect(events.read('mig-none')), []);
      // Without an active trace there is no traceparent header.
      const other = await collect(events.read('mig-other'));
      assert.equal(other.length, 1);
      assert.equal(other[0].traceparent, undefined);
    } finally {
      propagation.disable();
    }
  });

  test('a follower gets the replay, then new events, and ends after the terminal one', async () => {
    const id = 'mig-follow';
    await events.publish(phaseEvent(id, 1, 1));
    await events.publish(phaseEvent(id, 2, 2));
    const seen: number[] = [];
    const following = (async () => {
      for await (const { event } of events.read(id, { follow: true })) seen.push(Number(event.sequence));
    })();
    await waitFor('the replay', () => seen.length === 2);
    await events.publish(phaseEvent(id, 3, 3));
    await waitFor('the live event', () => seen.length === 3);
    const terminal = completedEvent(id, 4);
    assert.equal(isTerminalEvent(terminal), true);
    await events.publish(terminal);
    await following; // returns by itself after the terminal event
    assert.deepEqual(seen, [1, 2, 3, 4]);
    const last = (await collect(events.read(id, { afterSequence: 3 })))[0];
    assert.equal(last.subject, 'ferry.migrations.mig-follow.migration_completed');
  });

  test('a follower stops when its signal aborts', async () => {
    const id = 'mig-abort';
    await events.publish(phaseEvent(id, 1, 1));
    const ac = new AbortController();
    const seen: number[] = [];
    const following = (async () => {
      for await (const { event } of events.read(id, { follow: true, signal: ac.signal })) seen.push(Number(event.sequence));
    })();
    await waitFor('the replay', () => seen.length === 1);
    ac.abort();
    await following;
    assert.deepEqual(seen, [1]);
  });
});
