// The OpenTelemetry bootstrap every Ferry process runs first thing (services/<name>/src/telemetry.ts,
// imported by main.ts before anything loads @grpc/grpc-js, so that the gRPC instrumentation can
// patch it). It registers:
// - the propagators of OTEL_PROPAGATORS (tracecontext, baggage, none; default: tracecontext and
//   baggage), so a migration's context crosses gRPC metadata, NATS headers and the page data
//   connection;
// - the gRPC instrumentation: a client span per outgoing call, a server span per incoming one;
// - a tracer provider named after the service (resource service.name, service.namespace=ferry,
//   ferry.host = FERRY_HOST, plus OTEL_RESOURCE_ATTRIBUTES and the host and process), exporting
//   as trace-export.ts decides from the OTEL_* variables; the sampler comes from
//   OTEL_TRACES_SAMPLER and batching from OTEL_BSP_* (the trace SDK reads both).
// When nothing is to be exported the provider still records spans and drops them on end: trace
// ids exist (migration records, log lines, event headers carry them) but nothing leaves the process.
//
// Why not @opentelemetry/sdk-node: it loads the metrics and logs SDKs and every exporter of every
// signal whether used or not, about 25 MB of heap in each of the eleven processes of a lab, and
// every full garbage collection marks it again (BENCHMARKS.md §3). Only the trace SDK is loaded
// here, and an exporter's package only when the environment asks for that exporter.

import { createRequire } from 'node:module';
import type { TextMapPropagator } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { defaultResource, detectResources, envDetector, hostDetector, processDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, NodeTracerProvider, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { listSetting, traceExportFromEnv, type OtlpProtocol, type TraceExport } from './trace-export';

export interface Telemetry {
  serviceName: string;
  traces: TraceExport;
  /** Ends the SDK: spans still buffered are exported first. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * gRPC methods that get no spans: the health service's Check/Watch (probes would flood the
 * traces) and server reflection. The instrumentation matches the method name alone.
 */
export const UNTRACED_GRPC_METHODS = [/^Check$/, /^Watch$/, /^ServerReflectionInfo$/];

/** Records spans (so they have ids and a context) and forgets them when they end. */
const keepLocal: SpanProcessor = {
  onStart: () => {},
  onEnd: () => {},
  forceFlush: async () => {},
  shutdown: async () => {},
};

// Exporter packages are loaded on demand, synchronously: the provider must exist before main.ts
// goes on to load @grpc/grpc-js.
const load = createRequire(__filename);

/** Each OTLP protocol's exporter package; each reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*. */
const OTLP_EXPORTER_PACKAGES: Record<OtlpProtocol, string> = {
  'http/protobuf': '@opentelemetry/exporter-trace-otlp-proto',
  'http/json': '@opentelemetry/exporter-trace-otlp-http',
  grpc: '@opentelemetry/exporter-trace-otlp-grpc',
};

/** One processor per exporter named in OTEL_TRACES_EXPORTER: batched, except the console's (as the OTel SDKs do). */
function spanProcessorsFor(traces: TraceExport): SpanProcessor[] {
  if (traces.kind !== 'export') return [keepLocal];
  return traces.exporters.map((name): SpanProcessor => {
    switch (name) {
      case 'otlp': {
        const { OTLPTraceExporter } = load(OTLP_EXPORTER_PACKAGES[traces.otlp!.protocol]) as { OTLPTraceExporter: new () => SpanExporter };
        return new BatchSpanProcessor(new OTLPTraceExporter());
      }
      case 'zipkin': {
        const { ZipkinExporter } = load('@opentelemetry/exporter-zipkin') as { ZipkinExporter: new () => SpanExporter };
        return new BatchSpanProcessor(new ZipkinExporter());
      }
      case 'console':
        return new SimpleSpanProcessor(new ConsoleSpanExporter());
    }
  });
}

/** OTEL_PROPAGATORS: a comma-separated list of tracecontext and baggage, or none. */
export function propagatorFromEnv(env: NodeJS.ProcessEnv): TextMapPropagator | null {
  const names = listSetting(env, 'OTEL_PROPAGATORS');
  if (names.length === 0) names.push('tracecontext', 'baggage');
  if (names.includes('none')) return null;
  const propagators = names.map((name) => {
    if (name === 'tracecontext') return new W3CTraceContextPropagator();
    if (name === 'baggage') return new W3CBaggagePropagator();
    throw new RangeError(`OTEL_PROPAGATORS names "${name}"; Ferry propagates with tracecontext, baggage or none`);
  });
  return new CompositePropagator({ propagators });
}

/** Starts the SDK for this process, configured by process.env (the SDK reads it too). */
export function startTelemetry(serviceName: string): Telemetry {
  const env = process.env;
  const traces = traceExportFromEnv(env);
  const name = env.OTEL_SERVICE_NAME?.trim() || serviceName;
  if (traces.kind === 'disabled') return { serviceName: name, traces, shutdown: async () => {} };
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector, processDetector, hostDetector] }))
    .merge(
      resourceFromAttributes({
        'service.name': name,
        'service.namespace': 'ferry',
        ...(env.FERRY_HOST ? { 'ferry.host': env.FERRY_HOST } : {}),
      }),
    );
  const provider = new NodeTracerProvider({ resource, spanProcessors: spanProcessorsFor(traces) });
  const propagator = propagatorFromEnv(env);
  // null: no propagator registered, as OTEL_PROPAGATORS=none asks.
  provider.register({ propagator });
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS })],
  });
  let stopped: Promise<void> | undefined;
  return {
    serviceName: name,
    traces,
    shutdown: () =>
      (stopped ??= (async () => {
        unregister();
        await provider.shutdown();
      })()),
  };
}
