// Observability of a real migration on a real lab cluster (NATS, two emulated hosts with their
// four services each, the coordinator; every one its own process), exporting traces over
// OTLP/HTTP protobuf to a real receiver written for the test:
//   (a) one trace per migration across all five services: one span per round, and the spans of
//       the per-host work (suspend, CLEAN, inflate, send, write) and of NATS publish/consume;
//   (b) the migration's JetStream events read back in order by a plain NATS consumer that decodes
//       them with the generated MigrationEvent codec alone, each with traceparent and a msg id;
//   (c) every service's Prometheus endpoint answers well-formed text with the expected figures;
//   (d) every log line of the migration's work carries its migration_id and trace_id.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Migration, MigrationEvent, MigrationPhase, WorkloadKind } from '@ferry/proto';
import { runMigrationSession } from '../../libs/cli/src/migration-session';
import { parseExposition, type Exposition } from '../../libs/telemetry/test/support/exposition-parser';
import { waitFor } from '@ferry/testing';
import { startTestCluster, type TestCluster } from '../support/cluster';
import { OtlpReceiver, SPAN_KIND, type ReceivedSpan } from './support/otlp-receiver';

const MiB = 1024 * 1024;
const SERVICES = ['migration-coordinator', 'host-agent', 'memory-tracker', 'balloon-manager', 'page-streamer'];

/**
 * A MigrationEvent decoder built at run time from proto/ferry/v1/*.proto alone (no generated
 * code): what any subscriber in any language can do with the proto files.
 */
function protoOnlyEventDecoder(): (bytes: Buffer) => Record<string, unknown> {
  const definitions = loadSync('event-decoder.proto', {
    includeDirs: [join(__dirname, 'support'), join(__dirname, '..', '..', 'proto')],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const service = definitions['ferry.test.EventDecoder'] as unknown as Record<string, MethodDefinition<unknown, Record<string, unknown>>>;
  return (bytes) => service.Decode.requestDeserialize(bytes) as Record<string, unknown>;
}

/** The ready line of a lab process's log (it names the metrics endpoint). */
function readyLine(logFile: string): Record<string, unknown> {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const obj = JSON.parse(line) as Record<string, unknown>;
    if (obj.msg === 'ready') return obj;
  }
  throw new Error(`no ready line in ${logFile}`);
}

function scrape(address: string): Promise<{ type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(`http://${address}/metrics`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode === 200 ? resolve({ type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }) : reject(new Error(`${address}: HTTP ${res.statusCode}`)),
      );
    }).on('error', reject);
  });
}

describe('observability of a migration', { timeout: 20 * 60_000 }, () => {
  let receiver: OtlpReceiver;
  let c: TestCluster;
  let m: Migration;

  before(async () => {
    receiver = await OtlpReceiver.start();
    c = await startTestCluster(2, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpEndpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        // Spans leave each process within 200 ms rather than the default 5 s.
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
    });
    await c.ferry.createDomain('host-1', { name: 'obs-1', memoryBytes: 64 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 5, freeFraction: 0.5 } });
    // layered: balloon compaction on (an inflate span), layered rounds, verify (digests).
    const r = await runMigrationSession(c.ferry, { domainName: 'obs-1', targetHost: 'host-2', policy: 'layered', options: { verify: true } });
    assert.equal(r.summary.outcome, 'succeeded', JSON.stringify(r));
    m = await c.ferry.getMigration(r.summary.id);
  });
  after(async () => {
    await c?.close();
    await receiver?.close();
  });

  test('(a) one trace across the five services, one span per round, the per-host work and NATS joined to it', async () => {
    assert.match(m.traceId, /^[0-9a-f]{32}$/, 'the record names its trace');
    assert.match(m.traceparent, new RegExp(`^00-${m.traceId}-[0-9a-f]{16}-01$`), 'the record keeps the root traceparent');
    const rounds = m.rounds.map((r) => r.round);
    assert.ok(rounds.length >= 2, `at least round 0 and the final round: ${JSON.stringify(rounds)}`);
    const named = (spans: ReceivedSpan[], pattern: RegExp) => spans.filter((s) => pattern.test(s.name));

    // Wait until the whole tree is in: the root (it ends last), the consumer of the terminal
    // event, no span whose parent is missing, and the server side of every gRPC call made (each
    // process exports in its own batches, so a callee's spans can arrive after the root).
    const spans = await waitFor(
      'the whole trace at the receiver',
      async () => {
        const t = receiver.trace(m.traceId);
        const ids = new Set(t.map((s) => s.spanId));
        const root = t.find((s) => s.name === `migration ${m.id}`);
        const consumedEnd = t.some((s) => s.kind === SPAN_KIND.CONSUMER && s.name === 'process migration_completed');
        const complete = t.every((s) => s.parentSpanId === '' || ids.has(s.parentSpanId));
        const served = new Set(t.filter((s) => s.kind === SPAN_KIND.SERVER).map((s) => s.parentSpanId));
        const answered = t.filter((s) => s.kind === SPAN_KIND.CLIENT && s.attributes['rpc.system'] === 'grpc').every((s) => served.has(s.spanId));
        return root && consumedEnd && complete && answered ? t : undefined;
      },
      120_000,
    );

    // The wait above did look at the gRPC calls: the instrumentation marks their client spans.
    assert.ok(spans.some((s) => s.kind === SPAN_KIND.CLIENT && s.attributes['rpc.system'] === 'grpc'), 'gRPC client spans carry rpc.system');

    // Nothing of this migration went into another trace.
    const elsewhere = receiver.spans.filter((s) => s.attributes['ferry.migration_id'] === m.id && s.traceId !== m.traceId);
    assert.deepEqual(elsewhere.map((s) => `${s.service}: ${s.name}`), [], 'every span of the migration is in its trace');

    // One root, in the coordinator; every other span hangs below it.
    const roots = spans.filter((s) => s.parentSpanId === '');
    assert.deepEqual(roots.map((s) => `${s.service}: ${s.name}`), [`migration-coordinator: migration ${m.id}`]);

    // All five services took part.
    const services = new Set(spans.map((s) => s.service));
    for (const svc of SERVICES) assert.ok(services.has(svc), `spans from ${svc} (got ${[...services].join(', ')})`);

    // A span per phase the record went through (from PREFLIGHT on).
    const phases = m.phaseTransitions.map((p) => MigrationPhase[p.phase].replace('MIGRATION_PHASE_', '')).filter((p) => p !== 'PENDING' && p !== 'DONE');
    for (const p of phases) assert.equal(named(spans, new RegExp(`^phase ${p}$`)).length, 1, `one span for phase ${p}`);

    // One span per round, on each side of the stream as well.
    const perRound = (pattern: RegExp, service: string) =>
      spans
        .filter((s) => pattern.test(s.name) && s.service === service)
        .map((s) => Number(s.attributes['ferry.round']))
        .sort((a, b) => a - b);
    assert.deepEqual(perRound(/^round \d+( \(final\))?$/, 'migration-coordinator'), rounds, 'one coordinator span per round');
    assert.deepEqual(perRound(/^send round \d+$/, 'page-streamer'), rounds, 'one send span per round');
    assert.deepEqual(perRound(/^write round \d+$/, 'page-streamer'), rounds, 'one write span per round');

    // The per-host work, each span under its gRPC server span, carrying the migration id.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const work: Array<[string, RegExp]> = [
      ['host-agent', /^suspend domain$/],
      ['memory-tracker', /^prepare round \d+ \(CLEAN/],
      ['balloon-manager', /^compact \(inflate balloon\)$/],
      ['page-streamer', /^send round \d+$/],
    ];
    for (const [service, pattern] of work) {
      const found = named(spans, pattern).filter((s) => s.service === service);
      assert.ok(found.length > 0, `${service}: a span ${pattern}`);
      for (const s of found) {
        assert.equal(s.attributes['ferry.migration_id'], m.id, `${s.name} carries ferry.migration_id`);
        const parent = byId.get(s.parentSpanId);
        assert.equal(parent?.kind, SPAN_KIND.SERVER, `${s.name} is a child of its gRPC server span`);
        assert.equal(parent?.service, service);
      }
    }
    // The receiving side: each write span is a child of the sending host's send span of its round.
    for (const w of named(spans, /^write round \d+$/)) {
      const parent = byId.get(w.parentSpanId);
      assert.equal(parent?.name, `send round ${w.attributes['ferry.round']}`, `${w.name} continues the sender's span`);
      assert.notEqual(parent?.resource['ferry.host'], w.resource['ferry.host'], 'sender and receiver are different hosts');
      assert.ok(Number(w.attributes['ferry.pages_received']) >= 0);
    }
    // The state rides with the final round: sent in a span under that round's send span, loaded
    // on the target in a span under that.
    const [sentState, ...moreSent] = named(spans, /^send vCPU state$/);
    assert.equal(moreSent.length, 0, 'the state was sent once');
    assert.equal(byId.get(sentState.parentSpanId)?.name, `send round ${rounds[rounds.length - 1]}`, 'the state went with the final round');
    const loaded = named(spans, /^load vCPU state$/);
    assert.equal(loaded.length, 1, 'the target loaded the state in a span');
    assert.equal(loaded[0].parentSpanId, sentState.spanId, "loading the state continues the sender's span");

    // A round's gRPC calls are children of that round's span (the per-host spans hang below them).
    for (const p of named(spans, /^prepare round \d+/)) {
      let up = byId.get(p.parentSpanId);
      while (up && !/^round \d+/.test(up.name)) up = byId.get(up.parentSpanId);
      assert.equal(up?.attributes['ferry.round'], p.attributes['ferry.round'], `${p.name} is inside its round's span`);
    }

    // NATS: each event published in a PRODUCER span, consumed in a CONSUMER span joined to it.
    const producers = spans.filter((s) => s.kind === SPAN_KIND.PRODUCER);
    const consumers = spans.filter((s) => s.kind === SPAN_KIND.CONSUMER);
    assert.equal(producers.length, Number(m.lastEventSequence), 'one publish span per event');
    assert.ok(consumers.length > 0);
    for (const s of consumers) assert.equal(byId.get(s.parentSpanId)?.kind, SPAN_KIND.PRODUCER, `${s.name} is a child of its publish span`);
  });

  test('(b) the JetStream events read back in order by a consumer that knows only the proto', async () => {
    const decodeFromProtoFiles = protoOnlyEventDecoder();
    let nc: NatsConnection | undefined;
    try {
      nc = await connect({ servers: c.lab.nats });
      const consumer = await jetstream(nc).consumers.get('FERRY_EVENTS', { filter_subjects: `ferry.migrations.${m.id}.>` });
      const stored = (await consumer.info(true)).num_pending;
      assert.equal(stored, Number(m.lastEventSequence), 'every event of the record is in the stream');
      const events: Array<{ subject: string; event: MigrationEvent; fromProto: Record<string, unknown>; traceparent: string; msgId: string }> = [];
      const messages = await consumer.fetch({ max_messages: stored, expires: 30_000 });
      for await (const msg of messages) {
        events.push({
          subject: msg.subject,
          event: MigrationEvent.decode(msg.data),
          fromProto: decodeFromProtoFiles(Buffer.from(msg.data)),
          traceparent: msg.headers?.get('traceparent') ?? '',
          msgId: msg.headers?.get('Nats-Msg-Id') ?? '',
        });
        if (events.length === stored) break;
      }
      await consumer.delete().catch(() => {});
      assert.deepEqual(
        events.map((e) => Number(e.event.sequence)),
        Array.from({ length: stored }, (_, i) => i + 1),
        'numbered 1..N without gaps, in stream order',
      );
      for (const e of events) {
        assert.equal(e.event.migrationId, m.id);
        const kind = e.event.event!.$case.replace(/[A-Z]/g, (x) => `_${x.toLowerCase()}`);
        assert.equal(e.subject, `ferry.migrations.${m.id}.${kind}`);
        assert.match(e.traceparent, new RegExp(`^00-${m.traceId}-[0-9a-f]{16}-01$`), `event ${e.event.sequence} carries the migration's traceparent`);
        assert.equal(e.msgId, `${m.id}:${e.event.sequence}`, 'the message id deduplicates retries');
        // The proto files alone decode the same event.
        assert.equal(e.fromProto.migrationId, m.id);
        assert.equal(e.fromProto.sequence, String(e.event.sequence));
        assert.equal(e.fromProto.event, e.event.event!.$case);
        if (e.event.event?.$case === 'roundCompleted') {
          const round = (e.fromProto.roundCompleted as { round: { round: number; pagesSent: string } }).round;
          assert.equal(round.round, e.event.event.roundCompleted.round!.round);
          assert.equal(round.pagesSent, String(e.event.event.roundCompleted.round!.pagesSent));
        }
      }
      // The story the events tell is the record's.
      const first = events[0].event.event;
      assert.ok(first?.$case === 'phaseChanged' && first.phaseChanged.to === MigrationPhase.MIGRATION_PHASE_PENDING);
      const phases = events.flatMap((e) => (e.event.event?.$case === 'phaseChanged' ? [e.event.event.phaseChanged.to] : []));
      assert.deepEqual(phases, m.phaseTransitions.map((p) => p.phase));
      const rounds = events.flatMap((e) => (e.event.event?.$case === 'roundCompleted' ? [e.event.event.roundCompleted.round!.round] : []));
      assert.deepEqual(rounds, m.rounds.map((r) => r.round));
      const last = events[events.length - 1].event;
      assert.equal(last.event?.$case, 'migrationCompleted');
      assert.equal(last.migration?.id, m.id, 'the terminal event carries the final record');
    } finally {
      await nc?.close();
    }
  });

  test('(c) every service serves Prometheus metrics; the figures match the migration', async () => {
    const services = c.lab.processes.filter((x) => SERVICES.some((s) => x.name.endsWith(s)));
    const addressOf = (name: string) => String(readyLine(services.find((p) => p.name === name)!.logFile).metrics_address);
    // The coordinator's figures come from the event stream: wait until it has taken the end in.
    await waitFor('the coordinator to count the migration', async () => {
      const x = parseExposition((await scrape(addressOf('migration-coordinator'))).body);
      return x.value('ferry_migrations_total', { outcome: 'succeeded' }) === 1;
    });
    const scraped = new Map<string, Exposition>();
    for (const p of services) {
      const address = readyLine(p.logFile).metrics_address;
      assert.equal(typeof address, 'string', `${p.name} logs metrics_address in its ready line`);
      const { type, body } = await scrape(String(address));
      assert.match(type, /^text\/plain; version=0\.0\.4/);
      scraped.set(p.name, parseExposition(body)); // throws on anything malformed
    }
    assert.equal(scraped.size, 9, 'four services on each of two hosts, and the coordinator');
    const coordinator = scraped.get('migration-coordinator')!;
    const id = { migration_id: m.id };
    assert.equal(coordinator.value('ferry_migrations_total', { outcome: 'succeeded' }), 1);
    assert.equal(coordinator.value('ferry_migration_rounds_total', { policy: 'layered' }), m.rounds.length);
    assert.equal(coordinator.value('ferry_migration_downtime_seconds_count', { policy: 'layered' }), 1);
    assert.equal(coordinator.value('ferry_migration_data_processed_bytes', id), Number(m.totals!.bytesSent));
    assert.equal(coordinator.value('ferry_migration_data_remaining_bytes', id), 0);
    assert.ok(coordinator.value('ferry_migration_memory_transfer_rate_bytes', id)! > 0);
    assert.ok(coordinator.value('ferry_migration_dirty_memory_rate_pages', id)! >= 0);
    assert.equal(coordinator.value('ferry_migration_info', { ...id, domain: 'obs-1', source: 'host-1', target: 'host-2', policy: 'layered' }), 1);
    assert.equal(coordinator.value('ferry_migrations_in_phase', { phase: 'precopy' }), 0, 'nothing is running any more');

    const source = (svc: string) => scraped.get(`host-1/${svc}`)!;
    const target = (svc: string) => scraped.get(`host-2/${svc}`)!;
    assert.equal(source('host-agent').value('ferry_host_agent_suspends_total', { result: 'ok' }), 1);
    assert.equal(source('host-agent').value('ferry_host_agent_suspend_seconds_count'), 1);
    assert.equal(source('memory-tracker').value('ferry_memory_tracker_rounds_prepared_total'), m.rounds.length);
    assert.ok(source('memory-tracker').value('ferry_memory_tracker_cleans_total')! >= m.rounds.length - 1);
    assert.equal(source('balloon-manager').value('ferry_balloon_manager_compactions_total', { result: 'reached' })! + source('balloon-manager').value('ferry_balloon_manager_compactions_total', { result: 'short' })!, 1);
    assert.equal(source('balloon-manager').value('ferry_balloon_manager_pages_released_total'), Number(m.totals!.balloonReleasedPages));
    assert.equal(source('page-streamer').value('ferry_page_streamer_rounds_sent_total'), m.rounds.length);
    assert.equal(source('page-streamer').value('ferry_page_streamer_pages_sent_total'), Number(m.totals!.pagesSent));
    assert.equal(target('page-streamer').value('ferry_page_streamer_rounds_received_total'), m.rounds.length);
    assert.ok(target('page-streamer').value('ferry_page_streamer_pages_received_total')! >= Number(m.totals!.pagesSent));
    assert.ok(target('page-streamer').value('ferry_page_streamer_bytes_received_total')! > 0);
  });

  test('(d) every log line of the migration carries migration_id and the trace_id', () => {
    const lines: Array<Record<string, unknown> & { file: string }> = [];
    for (const p of c.lab.processes.filter((x) => SERVICES.some((s) => x.name.endsWith(s)))) {
      for (const text of readFileSync(p.logFile, 'utf8').split('\n')) {
        // Lines naming the migration, and lines logged inside its trace.
        if (!text.includes(m.id) && !text.includes(m.traceId)) continue;
        lines.push({ ...(JSON.parse(text) as Record<string, unknown>), file: p.name });
      }
    }
    assert.ok(lines.length > 0);
    const hosts = new Set(lines.map((l) => l.file.split('/')[0]));
    assert.ok(hosts.has('host-1') && hosts.has('host-2') && hosts.has('migration-coordinator'), 'lines from both hosts and the coordinator');
    const bad = lines.filter((l) => l.migration_id !== m.id || l.trace_id !== m.traceId || typeof l.span_id !== 'string');
    assert.deepEqual(
      bad.map((l) => `${l.file}: ${l.msg} (migration_id ${l.migration_id}, trace_id ${l.trace_id})`),
      [],
      'lines of the migration carry its id, its trace and a span',
    );
  });
});
