// Benchmark (not a test): what receiving a data connection costs the receiving process's garbage
// collector, read the two ways StreamReader can (libs/streaming/src/wire/stream-reader.ts):
// 'data' events (a new ArrayBuffer per read) and an adopted socket reading into one fixed buffer.
//
//   node --import tsx libs/streaming/bench/receive-gc.ts [--mib 480] [--live-mib 40]
//
// The process first holds --live-mib of live objects, about what a page-streamer holds, because a
// full collection's cost and how often the old generation's limit is reached both depend on it.
// Then --mib are sent over loopback and read in 4 MiB pieces, as a receiver reads batch payloads.
// Figures: the time to receive, and full (mark-compact) and young (scavenge) collections counted by
// a PerformanceObserver, with their total pause.

import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { StreamReader } from '../src/wire/stream-reader';

const PIECE = 4 * 1024 * 1024;

interface Outcome {
  mode: string;
  ms: number;
  markCompacts: number;
  scavenges: number;
  pauseMs: number;
}

async function receive(mode: 'data events' | 'adopted', bytes: number): Promise<Outcome> {
  const server = createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const sender = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [raw] = await accepted;
  let reader: StreamReader;
  if (mode === 'adopted') reader = StreamReader.adopting(raw).reader;
  else {
    raw.resume();
    reader = new StreamReader(raw);
  }
  const counts = { markCompacts: 0, scavenges: 0, pauseMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) counts.markCompacts++;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) counts.scavenges++;
      counts.pauseMs += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const payload = Buffer.alloc(PIECE, 7);
  const target = Buffer.allocUnsafeSlow(PIECE);
  const started = performance.now();
  const sending = (async () => {
    for (let sent = 0; sent < bytes; sent += PIECE) if (!sender.write(payload)) await once(sender, 'drain');
  })();
  for (let got = 0; got < bytes; got += PIECE) await reader.readInto(target, PIECE);
  const ms = performance.now() - started;
  await sending;
  await new Promise((r) => setTimeout(r, 50)); // the observer's last entries
  observer.disconnect();
  sender.destroy();
  server.close();
  return { mode, ms: Math.round(ms), ...counts, pauseMs: Math.round(counts.pauseMs) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '480' }, 'live-mib': { type: 'string', default: '40' } } });
  const bytes = Math.round(Number(values.mib) / 4) * PIECE;
  // Live objects that stay live: about 100 bytes each.
  const live: Array<{ i: number; s: string }> = [];
  for (let i = 0; i < Number(values['live-mib']) * 10_000; i++) live.push({ i, s: `object ${i}` });
  console.log(`receiving ${bytes / 2 ** 20} MiB over loopback with ${values['live-mib']} MiB of live objects`);
  for (const mode of ['data events', 'adopted', 'data events', 'adopted'] as const) {
    const o = await receive(mode, bytes);
    console.log(`${o.mode.padEnd(12)} ${String(o.ms).padStart(5)} ms  mark-compacts ${String(o.markCompacts).padStart(3)}  scavenges ${String(o.scavenges).padStart(3)}  GC pauses ${o.pauseMs} ms`);
  }
  console.log(`(${live.length} live objects kept)`);
}

void main();
