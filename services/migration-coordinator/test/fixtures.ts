// Real processes for the coordinator's tests: a nats-server with JetStream and the coordinator
// itself (node --import tsx services/migration-coordinator/src/main.ts), each in a temporary
// folder, found ready by its log, and stopped (by pid) and removed afterwards.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { spawnProcess, startNatsServer, stopProcess, tail, type SpawnedProcess } from '@ferry/lab';

export interface NatsServer {
  url: string;
  pid: number;
}

export async function startNats(dir: string): Promise<NatsServer> {
  const { url, process: p } = await startNatsServer(join(dir, 'nats'), join(dir, 'nats-server.log'), false);
  return { url, pid: p.pid };
}

export interface CoordinatorProcess {
  address: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
  log(lines?: number): string;
}

export async function startCoordinator(dir: string, natsUrl: string, env: Record<string, string> = {}, name = 'coordinator'): Promise<CoordinatorProcess> {
  const logFile = join(dir, `${name}.log`);
  const p: SpawnedProcess = await spawnProcess({
    name,
    entry: 'services/migration-coordinator/src/main.ts',
    logFile,
    detached: false,
    env: { NATS_URL: natsUrl, FERRY_LISTEN: '127.0.0.1:0', ...env },
  });
  return {
    address: String(p.ready.address),
    pid: p.pid,
    logFile,
    stop: () => stopProcess(p.pid),
    log: (lines = 40) => tail(logFile, lines),
  };
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function natsConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url });
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
