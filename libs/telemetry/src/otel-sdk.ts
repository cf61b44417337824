// The OpenTelemetry bootstrap every Ferry process runs first thing (services/<name>/src/telemetry.ts,
// imported by main.ts before anything loads @grpc/grpc-js, so that the gRPC instrumentation can
// patch it). It registers:
// - the W3C trace-context and baggage propagators (the SDK's defaults, or OTEL_PROPAGATORS), so
//   a migration's context crosses gRPC metadata, NATS headers and the page data connection;
// - the gRPC instrumentation: a client span per outgoing call, a server span per incoming one;
// - a tracer provider named after the service (resource service.name, service.namespace=ferry,
//   ferry.host = FERRY_HOST), exporting as trace-export.ts decides from the OTEL_* variables.
// When nothing is to be exported the provider still records spans and drops them on end: trace
// ids exist (migration records, log lines, event headers carry them) but nothing leaves the process.

import { NodeSDK } from '@opentelemetry/sdk-node';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { traceExportFromEnv, type TraceExport } from './trace-export';

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

/** Starts the SDK for this process, configured by process.env (the SDK reads it too). */
export function startTelemetry(serviceName: string): Telemetry {
  const env = process.env;
  const traces = traceExportFromEnv(env);
  const name = env.OTEL_SERVICE_NAME?.trim() || serviceName;
  if (traces.kind === 'disabled') return { serviceName: name, traces, shutdown: async () => {} };
  const sdk = new NodeSDK({
    serviceName: name,
    resource: resourceFromAttributes({
      'service.namespace': 'ferry',
      ...(env.FERRY_HOST ? { 'ferry.host': env.FERRY_HOST } : {}),
    }),
    // Undefined: the SDK builds the exporters from the same OTEL_* variables (batching per OTEL_BSP_*).
    spanProcessors: traces.kind === 'export' ? undefined : [keepLocal],
    // Metrics are served in Prometheus format by the process itself, and logs go to stdout:
    // neither is sent over OTLP.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS })],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    serviceName: name,
    traces,
    shutdown: () => (stopped ??= sdk.shutdown()),
  };
}
