// The lab's NATS: the one NATS_URL names if it answers, else the default local server if it
// answers, else a Debian `nats-server` with JetStream started for the lab.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, spawnProcess, type SpawnedProcess } from './processes';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export function natsHostPort(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `nats://${url}`);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 4222) };
}

export function natsServerBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/bin', '/usr/bin'])) {
    const p = join(dir, 'nats-server');
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

export async function reachable(url: string): Promise<boolean> {
  const { host, port } = natsHostPort(url);
  return canConnect(host, port);
}

/** Starts nats-server with JetStream on a free loopback port, storing in `dir`. */
export async function startNatsServer(dir: string, logFile: string, detached: boolean): Promise<{ url: string; process: SpawnedProcess }> {
  const bin = natsServerBinary();
  if (!bin) throw new Error('no NATS server is reachable and nats-server is not installed (apt-get install nats-server)');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const proc = await spawnProcess({
    name: 'nats-server',
    entry: bin,
    rawCommand: true,
    args: ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)],
    logFile,
    detached,
    readyTimeoutMs: 30_000,
    readyCheck: async () => ((await canConnect('127.0.0.1', port, 500)) ? { port } : undefined),
  });
  return { url: `nats://127.0.0.1:${port}`, process: proc };
}
