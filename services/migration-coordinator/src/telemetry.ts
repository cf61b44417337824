// OpenTelemetry for the coordinator process. Imported before anything loads @grpc/grpc-js, so
// that the gRPC instrumentation can patch it and carry each migration's trace context into the
// per-host services. Spans are exported (OTLP, configured by the standard OTEL_* variables) only
// when an exporter is configured; otherwise traces are still created, so every migration has a
// trace id and its events a traceparent, but nothing leaves the process.

import { NodeSDK } from '@opentelemetry/sdk-node';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';

const discard: SpanProcessor = {
  onStart: () => {},
  onEnd: () => {},
  forceFlush: async () => {},
  shutdown: async () => {},
};

function exporterConfigured(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_TRACES_EXPORTER) return env.OTEL_TRACES_EXPORTER !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): { shutdown(): Promise<void> } {
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || serviceName,
    ...(exporterConfigured(env) ? {} : { spanProcessors: [discard] }),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: [/^Check$/, /^Watch$/, /ServerReflectionInfo/] })],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

export const telemetry = startTelemetry('migration-coordinator');
