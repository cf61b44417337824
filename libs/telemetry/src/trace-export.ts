// Where a process sends its spans, decided by the standard OpenTelemetry variables (the rules of
// the OTel specification, which otel-sdk.ts follows when it builds the exporters):
// - OTEL_SDK_DISABLED=true: no SDK at all (no spans, no trace ids, no propagation);
// - OTEL_TRACES_EXPORTER: a comma-separated list (otlp, console, zipkin); "none" exports nothing;
// - unset: OTLP when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set,
//   nothing otherwise. (Ferry's choice: a process started without any OTel setting must not try
//   to reach a collector on localhost.)
// The OTLP protocol comes from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL:
// grpc, http/protobuf (the default) or http/json.

export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';

export type TraceExport =
  | { kind: 'disabled' }
  | { kind: 'none' }
  | { kind: 'export'; exporters: TraceExporterName[]; otlp?: { protocol: OtlpProtocol; endpoint: string } };

const PROTOCOLS: readonly OtlpProtocol[] = ['grpc', 'http/protobuf', 'http/json'];

/** The exporters OTEL_TRACES_EXPORTER may name. */
export const TRACE_EXPORTERS = ['otlp', 'zipkin', 'console'] as const;
export type TraceExporterName = (typeof TRACE_EXPORTERS)[number];

function setting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

/** A comma-separated OTEL_* list: trimmed names, each once, empty entries dropped. */
export function listSetting(env: NodeJS.ProcessEnv, name: string): string[] {
  return [...new Set((setting(env, name) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))];
}

export function otlpProtocol(env: NodeJS.ProcessEnv): OtlpProtocol {
  const p = setting(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? setting(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (!(PROTOCOLS as readonly string[]).includes(p)) {
    throw new RangeError(`OTLP protocol "${p}" is not one of ${PROTOCOLS.join(', ')}`);
  }
  return p as OtlpProtocol;
}

/** The URL spans go to: the signal-specific endpoint as given, else the base one (+ /v1/traces over HTTP). */
export function otlpTracesEndpoint(env: NodeJS.ProcessEnv, protocol: OtlpProtocol): string {
  const specific = setting(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific) return specific;
  const base = setting(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') ?? (protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318');
  return protocol === 'grpc' ? base : `${base.replace(/\/+$/, '')}/v1/traces`;
}

export function traceExportFromEnv(env: NodeJS.ProcessEnv): TraceExport {
  if (setting(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return { kind: 'disabled' };
  const listed = listSetting(env, 'OTEL_TRACES_EXPORTER').filter((s) => s !== 'null');
  let exporters: string[];
  if (setting(env, 'OTEL_TRACES_EXPORTER')) {
    exporters = listed;
    if (exporters[0] === 'none' || exporters.length === 0) return { kind: 'none' };
    // The SDK's rule: "none" next to other names means the default.
    if (exporters.includes('none')) exporters = ['otlp'];
  } else if (setting(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') || setting(env, 'OTEL_EXPORTER_OTLP_ENDPOINT')) {
    exporters = ['otlp'];
  } else {
    return { kind: 'none' };
  }
  const unknown = exporters.filter((x) => !(TRACE_EXPORTERS as readonly string[]).includes(x));
  if (unknown.length > 0) {
    throw new RangeError(`OTEL_TRACES_EXPORTER names ${unknown.map((x) => `"${x}"`).join(', ')}; Ferry exports traces with ${TRACE_EXPORTERS.join(', ')} or none`);
  }
  const known = exporters as TraceExporterName[];
  if (!known.includes('otlp')) return { kind: 'export', exporters: known };
  const protocol = otlpProtocol(env);
  return { kind: 'export', exporters: known, otlp: { protocol, endpoint: otlpTracesEndpoint(env, protocol) } };
}

/** One line for logs: "otlp http/protobuf http://jaeger:4318/v1/traces", "none", ... */
export function describeTraceExport(e: TraceExport): string {
  if (e.kind !== 'export') return e.kind;
  return e.exporters.map((x) => (x === 'otlp' && e.otlp ? `otlp ${e.otlp.protocol} ${e.otlp.endpoint}` : x)).join(', ');
}
