// Benchmark (not a test): what one request/response hop between two idle processes costs on this
// machine, the unit the downtime window is made of (BENCHMARKS.md §2). Three kinds of hop, each a
// client process calling a server process over loopback TCP with a pause between calls (as in the
// window, where every process has been idle for a while):
//   socket  a one-byte echo over a plain TCP socket
//   grpc    a unary @grpc/grpc-js call, no telemetry
//   traced  the same call with Ferry's telemetry started on both sides as every service starts it
//           (startTelemetry: the gRPC instrumentation, spans recorded; nothing exported unless
//           OTEL_TRACES_EXPORTER says so)
// The kinds take turns in short batches so that drift in the machine's speed hits them alike.
//
//   node --import tsx libs/telemetry/bench/grpc-hop.ts [--calls 600] [--gap-ms 20] [--batch 50]

import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

type Kind = 'socket' | 'grpc' | 'traced';
const KINDS: Kind[] = ['socket', 'grpc', 'traced'];

const echo = (b: Buffer) => b;
/** One unary method with raw bytes both ways: no protobuf code in the measurement. */
const PING = { ping: { path: '/ferry.bench.Hop/Ping', requestStream: false, responseStream: false, requestSerialize: echo, requestDeserialize: echo, responseSerialize: echo, responseDeserialize: echo } };

type Role = { role: 'server' | 'client'; kind: Kind };

function roleOf(argv: string[]): Role | undefined {
  const [role, kind] = argv;
  if ((role === 'server' || role === 'client') && KINDS.includes(kind as Kind)) return { role, kind: kind as Kind };
  return undefined;
}

// require, not import(): the instrumentation patches grpc-js as require loads it.
const load = createRequire(__filename);

/** In a child: telemetry first (the instrumentation must patch grpc-js before it loads). */
function loadGrpc(kind: Kind): typeof import('@grpc/grpc-js') {
  if (kind === 'traced') (load('../src/otel-sdk') as typeof import('../src/otel-sdk')).startTelemetry(`grpc-hop-${process.argv[2]}`);
  return load('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
}

function serve(kind: Kind): void {
  if (kind === 'socket') {
    const server = createServer((s) => s.on('data', (d) => s.write(d)));
    server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
    return;
  }
  const grpc = loadGrpc(kind);
  const server = new grpc.Server();
  server.addService(PING as never, { ping: (call: { request: Buffer }, done: (e: null, r: Buffer) => void) => done(null, call.request) });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send!(port);
  });
}

/** A function that makes one call and resolves when its answer is back. */
async function caller(kind: Kind, port: number): Promise<() => Promise<unknown>> {
  if (kind === 'socket') {
    const sock: Socket = createConnection({ port, host: '127.0.0.1', noDelay: true });
    await new Promise((resolve) => sock.once('connect', resolve));
    return () => new Promise((resolve) => {
      sock.once('data', resolve);
      sock.write('x');
    });
  }
  const grpc = loadGrpc(kind);
  const Client = grpc.makeGenericClientConstructor(PING as never, 'Hop');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
    ping(req: Buffer, cb: (e: Error | null, r: Buffer) => void): void;
  };
  return () => new Promise((resolve, reject) => client.ping(Buffer.from('x'), (e, r) => (e ? reject(e) : resolve(r))));
}

/** The client child: told how many calls to make, answers with their durations in ms. */
function clientLoop(kind: Kind): void {
  const server = fork(__filename, ['server', kind], { execArgv: ['--import', 'tsx'] });
  server.once('message', async (port) => {
    const call = await caller(kind, Number(port));
    await call(); // connection and first-call set-up are not what the window pays
    process.on('message', async (msg: { calls: number; gapMs: number } | 'exit') => {
      if (msg === 'exit') {
        server.kill();
        process.exit(0);
      }
      const took: number[] = [];
      for (let i = 0; i < msg.calls; i++) {
        await new Promise((resolve) => setTimeout(resolve, msg.gapMs));
        const started = performance.now();
        await call();
        took.push(performance.now() - started);
      }
      process.send!(took);
    });
    process.send!('ready');
  });
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '600' }, 'gap-ms': { type: 'string', default: '20' }, batch: { type: 'string', default: '50' } } });
  const calls = Number(values.calls);
  const gapMs = Number(values['gap-ms']);
  const batch = Number(values.batch);
  const clients = new Map<Kind, ReturnType<typeof fork>>();
  for (const kind of KINDS) {
    const child = fork(__filename, ['client', kind], { execArgv: ['--import', 'tsx'] });
    await new Promise((resolve) => child.once('message', resolve));
    clients.set(kind, child);
  }
  const took = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
  for (let done = 0; done < calls; done += batch) {
    for (const kind of KINDS) {
      const child = clients.get(kind)!;
      const result = new Promise<number[]>((resolve) => child.once('message', (m) => resolve(m as number[])));
      child.send({ calls: Math.min(batch, calls - done), gapMs });
      took.get(kind)!.push(...(await result));
    }
  }
  for (const child of clients.values()) child.send('exit');
  console.log(`${calls} calls of each kind, ${gapMs} ms apart, in turns of ${batch}`);
  for (const kind of KINDS) {
    const sorted = took.get(kind)!.sort((a, b) => a - b);
    const f = (q: number) => quantile(sorted, q).toFixed(2).padStart(6);
    console.log(`${kind.padEnd(7)} median ${f(0.5)} ms   p90 ${f(0.9)} ms   p99 ${f(0.99)} ms`);
  }
}

const role = roleOf(process.argv.slice(2));
if (!role) void main();
else if (role.role === 'server') serve(role.kind);
else clientLoop(role.kind);
