// A real OTLP trace receiver for tests, what Jaeger or an OpenTelemetry Collector is to Ferry in
// production: an HTTP server taking POST /v1/traces as OTLP/HTTP protobuf (application/x-protobuf,
// decoded with the OTLP proto definitions in ./otlp-proto) or OTLP/HTTP JSON (application/json),
// and a gRPC server with opentelemetry.proto.collector.trace.v1.TraceService/Export. Every span
// received is kept, flattened, with its resource's service.name.

import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Server as GrpcServer, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';

export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc';

/** OTLP's SpanKind numbers. */
export const SPAN_KIND = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  service: string;
  resource: Record<string, unknown>;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code: number; message: string };
  startNanos: bigint;
  endNanos: bigint;
  /** How it arrived. */
  protocol: OtlpProtocol;
}

const EXPORT_METHOD = 'opentelemetry.proto.collector.trace.v1.TraceService';

function loadTraceService() {
  const definitions = loadSync('trace_service.proto', {
    includeDirs: [join(__dirname, 'otlp-proto')],
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  const service = definitions[EXPORT_METHOD] as unknown as Record<string, MethodDefinition<unknown, unknown>>;
  return { service, exportMethod: service.Export };
}

/** Protobuf-decoded (proto-loader) and OTLP/JSON messages differ only in how values are spelled. */
type Loose = Record<string, unknown>;

function hexOf(v: unknown): string {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  // OTLP/JSON spells ids as hex strings.
  return typeof v === 'string' ? v.toLowerCase() : '';
}

function anyValue(v: Loose | undefined): unknown {
  if (!v) return undefined;
  // proto-loader's `oneofs: true` names the set member in `value`; OTLP/JSON just has the member.
  const member = typeof v.value === 'string' ? v.value : Object.keys(v).find((k) => k.endsWith('Value'));
  if (!member) return undefined;
  const x = v[member];
  switch (member) {
    case 'intValue':
      return Number(x);
    case 'arrayValue':
      return ((x as Loose).values as Loose[] | undefined)?.map(anyValue) ?? [];
    case 'kvlistValue':
      return attributesOf((x as Loose).values as Loose[] | undefined);
    default:
      return x;
  }
}

function attributesOf(list: Loose[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[String(kv.key)] = anyValue(kv.value as Loose | undefined);
  return out;
}

/** The spans of one ExportTraceServiceRequest. */
export function flattenExportRequest(request: Loose, protocol: OtlpProtocol): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of (request.resourceSpans as Loose[] | undefined) ?? []) {
    const resource = attributesOf(((rs.resource as Loose | undefined)?.attributes as Loose[] | undefined) ?? []);
    for (const ss of (rs.scopeSpans as Loose[] | undefined) ?? []) {
      for (const s of (ss.spans as Loose[] | undefined) ?? []) {
        const status = (s.status as Loose | undefined) ?? {};
        out.push({
          traceId: hexOf(s.traceId),
          spanId: hexOf(s.spanId),
          parentSpanId: hexOf(s.parentSpanId),
          name: String(s.name ?? ''),
          kind: Number(s.kind ?? 0),
          service: String(resource['service.name'] ?? ''),
          resource,
          attributes: attributesOf(s.attributes as Loose[] | undefined),
          links: ((s.links as Loose[] | undefined) ?? []).map((l) => ({ traceId: hexOf(l.traceId), spanId: hexOf(l.spanId) })),
          status: { code: Number(status.code ?? 0), message: String(status.message ?? '') },
          startNanos: BigInt(String(s.startTimeUnixNano ?? 0)),
          endNanos: BigInt(String(s.endTimeUnixNano ?? 0)),
          protocol,
        });
      }
    }
  }
  return out;
}

export class OtlpReceiver {
  private constructor(
    /** Every span received, in arrival order. */
    readonly spans: ReceivedSpan[],
    /** Export requests received, by protocol. */
    readonly requests: Record<OtlpProtocol, number>,
    private readonly http: HttpServer,
    private readonly grpc: GrpcServer,
    /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT with an HTTP protocol (…/v1/traces is added). */
    readonly httpEndpoint: string,
    /** URL for OTEL_EXPORTER_OTLP_ENDPOINT with OTEL_EXPORTER_OTLP_PROTOCOL=grpc. */
    readonly grpcEndpoint: string,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    const { service, exportMethod } = loadTraceService();
    const spans: ReceivedSpan[] = [];
    const requests: Record<OtlpProtocol, number> = { 'http/protobuf': 0, 'http/json': 0, grpc: 0 };
    const keep = (received: ReceivedSpan[], protocol: OtlpProtocol) => {
      spans.push(...received);
      requests[protocol]++;
    };

    const http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        try {
          let body = Buffer.concat(chunks);
          if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
          const json = String(req.headers['content-type'] ?? '').startsWith('application/json');
          const request = json ? (JSON.parse(body.toString('utf8')) as Loose) : (exportMethod.requestDeserialize(body) as Loose);
          keep(flattenExportRequest(request, json ? 'http/json' : 'http/protobuf'), json ? 'http/json' : 'http/protobuf');
          // An empty ExportTraceServiceResponse: everything accepted.
          res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : Buffer.alloc(0));
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`undecodable export request: ${(err as Error).message}`);
        }
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

    const grpc = new GrpcServer();
    const implementation: UntypedServiceImplementation = {
      Export: (call: { request: Loose }, callback: (err: null, res: Loose) => void) => {
        keep(flattenExportRequest(call.request, 'grpc'), 'grpc');
        callback(null, {});
      },
    };
    grpc.addService(service as unknown as ServiceDefinition, implementation);
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );

    return new OtlpReceiver(spans, requests, http, grpc, `http://127.0.0.1:${(http.address() as AddressInfo).port}`, `http://127.0.0.1:${grpcPort}`);
  }

  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.grpc.tryShutdown(() => resolve()));
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}
