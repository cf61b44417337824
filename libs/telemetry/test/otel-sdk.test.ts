// The OpenTelemetry bootstrap: which exporter the OTEL_* variables select (pure), and, in a real
// child process with a real OTLP receiver, that every protocol delivers the spans (flushed by
// shutdown), that gRPC calls get client and server spans in the caller's trace while the health
// service gets none, and that without any OTEL_* setting nothing is exported but trace context
// still exists.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describeTraceExport, propagatorFromEnv, traceExportFromEnv } from '../src';
import { OtlpReceiver, SPAN_KIND, type OtlpProtocol } from '../../../test/observability/support/otlp-receiver';

const REPO_ROOT = join(__dirname, '..', '..', '..');

describe('trace export from OTEL_* variables', () => {
  test('nothing is exported when nothing is set', () => {
    assert.deepEqual(traceExportFromEnv({}), { kind: 'none' });
    assert.equal(describeTraceExport(traceExportFromEnv({})), 'none');
  });

  test('an endpoint selects OTLP, http/protobuf by default, with /v1/traces added over HTTP', () => {
    assert.deepEqual(traceExportFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' }), {
      kind: 'export',
      exporters: ['otlp'],
      otlp: { protocol: 'http/protobuf', endpoint: 'http://jaeger:4318/v1/traces' },
    });
    assert.equal(
      describeTraceExport(traceExportFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })),
      'otlp grpc http://jaeger:4317',
    );
    assert.deepEqual(traceExportFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }).kind, 'export');
    assert.equal(
      describeTraceExport(traceExportFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })),
      'otlp http/json http://c:4318/custom',
    );
  });

  test('OTEL_TRACES_EXPORTER and OTEL_SDK_DISABLED', () => {
    assert.deepEqual(traceExportFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' }), { kind: 'none' });
    assert.equal(describeTraceExport(traceExportFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' })), 'otlp http/protobuf http://localhost:4318/v1/traces');
    assert.deepEqual(traceExportFromEnv({ OTEL_TRACES_EXPORTER: 'console' }), { kind: 'export', exporters: ['console'] });
    assert.deepEqual(traceExportFromEnv({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' }), { kind: 'disabled' });
    assert.throws(() => traceExportFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }), /not one of/);
    assert.deepEqual(traceExportFromEnv({ OTEL_TRACES_EXPORTER: 'zipkin,console' }), { kind: 'export', exporters: ['zipkin', 'console'] });
    assert.throws(() => traceExportFromEnv({ OTEL_TRACES_EXPORTER: 'otlp,jaeger' }), /"jaeger"; Ferry exports traces with otlp, zipkin, console or none/);
  });

  test('OTEL_PROPAGATORS: W3C trace context and baggage by default, either alone, or none', () => {
    assert.deepEqual(propagatorFromEnv({})?.fields(), ['traceparent', 'tracestate', 'baggage']);
    assert.deepEqual(propagatorFromEnv({ OTEL_PROPAGATORS: ' tracecontext ' })?.fields(), ['traceparent', 'tracestate']);
    assert.deepEqual(propagatorFromEnv({ OTEL_PROPAGATORS: 'baggage,baggage' })?.fields(), ['baggage']);
    assert.equal(propagatorFromEnv({ OTEL_PROPAGATORS: 'tracecontext,none' }), null);
    assert.throws(() => propagatorFromEnv({ OTEL_PROPAGATORS: 'b3' }), /"b3"; Ferry propagates with tracecontext, baggage or none/);
  });
});

interface ProbeOutput {
  traceId: string;
  traceparent: string;
  traces: string;
}

/** Runs the probe process with only these OTEL_* variables (the test's own are removed). */
function runProbe(otel: Record<string, string>): Promise<ProbeOutput> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_')) env[k] = v;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'fixtures', 'traced-process.ts')],
      { cwd: REPO_ROOT, env: { ...env, ...otel, FERRY_LOG_LEVEL: 'warn' }, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`probe failed: ${err.message}\n${stderr}`));
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(line) as ProbeOutput);
        } catch {
          reject(new Error(`probe printed no result: ${stdout}\n${stderr}`));
        }
      },
    );
  });
}

describe('the SDK in a process', { timeout: 300_000 }, () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await OtlpReceiver.start();
  });
  after(async () => {
    await receiver?.close();
  });

  for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as OtlpProtocol[]) {
    test(`OTLP over ${protocol}: spans arrive at shutdown, gRPC client and server spans in the caller's trace, no health spans`, async () => {
      const endpoint = protocol === 'grpc' ? receiver.grpcEndpoint : receiver.httpEndpoint;
      // A long batch delay: only the flush at shutdown can have sent the spans in time.
      const out = await runProbe({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_BSP_SCHEDULE_DELAY: '600000' });
      assert.match(out.traces, new RegExp(`^otlp ${protocol.replace('/', '\\/')} `));
      const spans = receiver.trace(out.traceId);
      assert.ok(spans.every((s) => s.protocol === protocol), 'received over the configured protocol');
      const root = spans.find((s) => s.name === 'probe');
      assert.ok(root, `the root span arrived: ${JSON.stringify(spans.map((s) => s.name))}`);
      assert.equal(root.service, 'telemetry-probe');
      assert.equal(root.resource['service.namespace'], 'ferry');
      const client = spans.find((s) => s.kind === SPAN_KIND.CLIENT && s.name.endsWith('HostAgentService/GetHostInfo'));
      const server = spans.find((s) => s.kind === SPAN_KIND.SERVER && s.name.endsWith('HostAgentService/GetHostInfo'));
      assert.ok(client && server, `client and server spans: ${JSON.stringify(spans.map((s) => [s.name, s.kind]))}`);
      assert.equal(client.parentSpanId, root.spanId);
      assert.equal(server.parentSpanId, client.spanId);
      assert.equal(
        receiver.spans.filter((s) => /Health|Check/.test(s.name)).length,
        0,
        'the health service is not traced',
      );
    });
  }

  test('without OTEL_* settings nothing is exported, but trace context exists and propagates', async () => {
    const before = receiver.spans.length;
    const out = await runProbe({});
    assert.equal(out.traces, 'none');
    assert.match(out.traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(out.traceId, '0'.repeat(32));
    assert.match(out.traceparent, new RegExp(`^00-${out.traceId}-[0-9a-f]{16}-01$`));
    assert.equal(receiver.spans.length, before);
  });
});
