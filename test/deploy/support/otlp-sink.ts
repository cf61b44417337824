// An OTLP/gRPC trace receiver as a process of its own: it takes the place of Jaeger's collector
// port when docker-compose.yml runs without Docker (support/compose-runner.ts), so the spans the
// services export to http://jaeger:4317 can be looked at. Each span received becomes one JSON
// line in the output file.
//   node --import tsx test/deploy/support/otlp-sink.ts --listen 0.0.0.0:4317 --out spans.jsonl

import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { flattenExportRequest } from '../../observability/support/otlp-receiver';

export interface SunkSpan {
  traceId: string;
  service: string;
  name: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, out: { type: 'string' } } });
  if (!values.listen || !values.out) throw new Error('usage: otlp-sink.ts --listen HOST:PORT --out FILE');
  const out = values.out;
  const definitions = loadSync('trace_service.proto', {
    includeDirs: [join(__dirname, '..', '..', 'observability', 'support', 'otlp-proto')],
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  const service = definitions['opentelemetry.proto.collector.trace.v1.TraceService'] as unknown as ServiceDefinition;
  const implementation: UntypedServiceImplementation = {
    Export: (call: { request: Record<string, unknown> }, callback: (err: null, res: object) => void) => {
      const lines = flattenExportRequest(call.request, 'grpc').map((s) => JSON.stringify({ traceId: s.traceId, service: s.service, name: s.name } satisfies SunkSpan));
      if (lines.length > 0) appendFileSync(out, `${lines.join('\n')}\n`);
      callback(null, {});
    },
  };
  const server = new Server();
  server.addService(service, implementation);
  await new Promise<number>((resolve, reject) => server.bindAsync(values.listen!, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  console.log(`otlp-sink: listening on ${values.listen}, spans to ${out}`);
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`otlp-sink: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
