// The event stream as DESIGN.md has it, against a real nats-server, with a real OpenTelemetry SDK
// (spans kept in memory): FERRY_EVENTS covers `ferry.>` (an older, narrower stream is widened
// without losing its events), each publish is a PRODUCER span whose context rides in the
// traceparent header, and a follower handles each event in a CONSUMER span that continues it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MigrationEvent } from '@ferry/proto';
import { EVENT_STREAM, EVENT_STREAM_SUBJECTS, MigrationEvents, type StoredEvent } from '../src';
import { startNats, waitFor, type NatsFixture } from '@ferry/testing';

function phaseEvent(migrationId: string, sequence: number): MigrationEvent {
  return MigrationEvent.fromPartial({
    migrationId,
    sequence: BigInt(sequence),
    time: new Date(),
    event: { $case: 'phaseChanged', phaseChanged: { from: sequence - 1, to: sequence, reason: `step ${sequence}` } },
  });
}

describe('the event stream with traces', { timeout: 120_000 }, () => {
  let nats: NatsFixture;
  let nc: NatsConnection;
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'cluster-test' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });

  before(async () => {
    provider.register();
    nats = await startNats();
    nc = await nats.connect();
  });
  after(async () => {
    await nats?.stop();
    await provider.shutdown();
  });

  test('a stream from before ferry.> is widened and keeps its events; other ferry subjects are stored', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: EVENT_STREAM, subjects: ['ferry.migrations.>'] });
    const old = phaseEvent('mig-old', 1);
    await jetstream(nc).publish('ferry.migrations.mig-old.phase_changed', MigrationEvent.encode(old).finish());

    const events = await MigrationEvents.open(nc);
    assert.deepEqual((await jsm.streams.info(EVENT_STREAM)).config.subjects, [EVENT_STREAM_SUBJECTS]);
    const replay: StoredEvent[] = [];
    for await (const e of events.read('mig-old')) replay.push(e);
    assert.deepEqual(replay.map((e) => e.event.sequence), [1n], 'the old event is still there');
    // Anything under ferry.> is captured now (a publish no stream captured would fail).
    const ack = await jetstream(nc).publish('ferry.hosts.host-1.joined', new Uint8Array([1]));
    assert.equal(ack.stream, EVENT_STREAM);
    // Opening again changes nothing.
    await MigrationEvents.open(nc);
    assert.deepEqual((await jsm.streams.info(EVENT_STREAM)).config.subjects, [EVENT_STREAM_SUBJECTS]);
  });

  test('publish spans carry the context in traceparent; the follower consumes each event in a span joined to it', async () => {
    const events = await MigrationEvents.open(nc);
    await events.publish(phaseEvent('mig-before', 1)); // before the follower: not delivered

    const seen: StoredEvent[] = [];
    const undecodable: string[] = [];
    const stop = new AbortController();
    const following = await events.follow(
      (e) => {
        seen.push(e);
        // The handler runs inside the consumer span.
        assert.equal(trace.getActiveSpan()?.spanContext().traceId, e.traceparent?.split('-')[1]);
      },
      { signal: stop.signal, onUndecodable: (subject) => undecodable.push(subject) },
    );
    // Published once follow() resolved: delivered from there on.
    const parent = trace.getTracer('test').startSpan('migration mig-traced');
    const ctx = trace.setSpan(context.active(), parent);
    await jetstream(nc).publish('ferry.migrations.mig-traced.phase_changed', new Uint8Array([0xff, 0xff, 0xff]));
    await events.publish(phaseEvent('mig-traced', 1), ctx);
    await events.publish(phaseEvent('mig-traced', 2), ctx);
    await waitFor('both events', () => seen.length === 2);
    stop.abort();
    await following.done;
    parent.end();

    assert.deepEqual(seen.map((e) => `${e.event.migrationId}:${e.event.sequence}`), ['mig-traced:1', 'mig-traced:2'], 'only events published after the follow began');
    assert.deepEqual(undecodable, ['ferry.migrations.mig-traced.phase_changed'], 'a payload that is not a MigrationEvent is skipped and reported');
    const spans = exporter.getFinishedSpans().filter((s) => s.attributes['ferry.migration_id'] === 'mig-traced');
    const producers = spans.filter((s) => s.kind === SpanKind.PRODUCER);
    const consumers = spans.filter((s) => s.kind === SpanKind.CONSUMER);
    assert.equal(producers.length, 2);
    assert.equal(consumers.length, 2);
    const traceId = parent.spanContext().traceId;
    for (const [i, p] of producers.entries()) {
      assert.equal(p.name, 'publish phase_changed');
      assert.equal(p.spanContext().traceId, traceId);
      assert.equal(p.parentSpanContext?.spanId, parent.spanContext().spanId);
      assert.equal(p.attributes['messaging.destination.name'], 'ferry.migrations.mig-traced.phase_changed');
      assert.equal(p.attributes['messaging.message.id'], `mig-traced:${i + 1}`);
      assert.equal(seen[i].traceparent, `00-${traceId}-${p.spanContext().spanId}-01`, 'the header names the publish span');
      const consumer = consumers.find((c) => c.parentSpanContext?.spanId === p.spanContext().spanId);
      assert.ok(consumer, 'the consume span is a child of its publish span');
      assert.equal(consumer.name, 'process phase_changed');
      assert.equal(consumer.attributes['ferry.migration_id'], 'mig-traced');
    }
  });
});
