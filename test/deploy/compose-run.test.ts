// docker-compose.yml run for real, without a Docker engine: every service's command and
// environment as a process in its own network namespace, names resolving as Compose's DNS does,
// /dev/shm and the named volumes shared exactly as the file says, Ferry's processes as the image's
// non-root user (support/compose-runner.ts). `docker compose up` with the file's health checks and
// dependency order, then the demo profile twice: the kv guest migrates to the other emulated host
// under a client's load, and back. Jaeger's OTLP port is taken by a receiver of the same protocol
// (Jaeger itself is not on this machine), where the migration's trace must arrive whole.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCompose } from './support/compose';
import { ComposeRun, type Substitute } from './support/compose-runner';
import type { SunkSpan } from './support/otlp-sink';

/** The NATS image runs nats-server with the service's arguments; Debian's nats-server is the same program. */
const natsServer: Substitute = {
  command(args, dataDir) {
    const out = [...args];
    const i = out.indexOf('--store_dir');
    if (i >= 0) out[i + 1] = dataDir;
    return ['nats-server', ...out];
  },
};

/** Jaeger's collector port: an OTLP/gRPC receiver writing what it gets to a file. */
function otlpSink(spansFile: string): Substitute {
  return {
    command(_args, dataDir) {
      return ['node', '--import', 'tsx', 'test/deploy/support/otlp-sink.ts', '--listen', '0.0.0.0:4317', '--out', join(dataDir, spansFile)];
    },
  };
}

function spansOf(file: string, traceId: string): SunkSpan[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as SunkSpan)
    .filter((s) => s.traceId === traceId);
}

const REQUIRED: [string, string][] = [
  ['ip', 'iproute2'],
  ['unshare', 'util-linux'],
  ['nsenter', 'util-linux'],
  ['setpriv', 'util-linux'],
  ['mountpoint', 'util-linux'],
  ['nats-server', 'nats-server'],
  ['wget', 'wget (NATS\'s health check in the compose file)'],
];

function requireMachine(): void {
  assert.equal(process.getuid?.(), 0, 'this test needs root: it creates network namespaces and mounts (CI runs as root)');
  const missing = REQUIRED.filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd}`]).status !== 0);
  assert.deepEqual(missing, [], `missing: apt-get install -y ${[...new Set(missing.map(([, pkg]) => pkg.split(' ')[0]))].join(' ')}`);
}

test('docker compose up, then the demo profile: the kv guest migrates to the other host under load, and back', { timeout: 20 * 60_000 }, async () => {
  requireMachine();
  const compose = loadCompose();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-compose-'));
  chmodSync(dir, 0o755); // the image's user reaches the volumes inside
  const run = new ComposeRun(compose, dir, { nats: natsServer, jaeger: otlpSink('spans.jsonl') });
  const spansFile = join(dir, 'data', 'jaeger', 'spans.jsonl');
  const upServices = Object.entries(compose.services).filter(([, s]) => !s.profiles).map(([n]) => n);
  try {
    run.createNetwork();
    for (const service of upServices) await run.up(service, 300_000);

    const hosts = await run.run('demo', 120_000, ['node', 'bin/ferry.js', 'hosts', '--json', '--coordinator', 'coordinator:7000']);
    assert.equal(hosts.code, 0, hosts.output);
    const registered = JSON.parse(hosts.output.trim().split('\n').pop()!) as { name: string; host_agent: string; ready: boolean }[];
    assert.deepEqual(
      registered.map((h) => [h.name, h.host_agent, h.ready]).sort(),
      [['host-1', 'host-1:7001', true], ['host-2', 'host-2:7001', true]],
      'each host registers the address its name resolves to',
    );

    const first = await run.run('demo', 600_000);
    console.log(first.output.split('\n').filter((l) => /SUCCEEDED|FAILED|downtime|client|now runs/.test(l)).map((l) => `# ${l}`).join('\n'));
    assert.equal(first.code, 0, first.output);
    assert.match(first.output, /demo-kv: host-1 → host-2 with layered: SUCCEEDED/);
    assert.match(first.output, /memory verified\s+yes/);
    assert.match(first.output, /, 0 lost writes of [1-9]\d* acknowledged/);
    assert.match(first.output, /demo-kv now runs on: host-2$/m);

    // The migration's trace reached "jaeger:4317": one trace id, spans from all five services.
    const traceId = /^\s*trace\s+([0-9a-f]{32})$/m.exec(first.output)?.[1];
    assert.ok(traceId, 'the demo printed no trace id');
    const services = ['balloon-manager', 'host-agent', 'memory-tracker', 'migration-coordinator', 'page-streamer'];
    const deadline = Date.now() + 90_000; // spans leave in batches, every few seconds
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = [...new Set(spansOf(spansFile, traceId).map((s) => s.service))].sort();
      if (services.every((s) => seen.includes(s))) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.deepEqual(seen, services, `services with spans in trace ${traceId}`);
    console.log(`# trace ${traceId}: ${spansOf(spansFile, traceId).length} spans from ${seen.length} services`);

    const second = await run.run('demo', 600_000);
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /demo-kv already runs on host-2/);
    assert.match(second.output, /demo-kv now runs on: host-1$/m);
  } catch (err) {
    const tails = ['coordinator', ...upServices.filter((s) => s.startsWith('host-'))].map((s) => run.logTail(s, 1500)).join('\n');
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${tails}`);
  } finally {
    await run.down();
    rmSync(dir, { recursive: true, force: true });
  }
});
