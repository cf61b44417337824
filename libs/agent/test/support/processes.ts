// Test support shared by the host-agent and balloon-manager tests: a real nats-server on a free
// port, real service processes started from their main.ts and awaited on their "ready" line, a
// poll-with-deadline helper, and the status + reason of a failed gRPC call.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { reasonOf } from '@ferry/runtime';
import type { ServiceError } from '@grpc/grpc-js';

export const REPO_ROOT = join(__dirname, '..', '..', '..', '..');
export const NATS_SERVER = '/usr/sbin/nats-server';

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** The gRPC status code and Ferry reason of a call that must fail. */
export async function failure(call: Promise<unknown>): Promise<{ code: number; reason: string | undefined; message: string }> {
  try {
    await call;
  } catch (err) {
    const se = err as ServiceError;
    return { code: se.code, reason: reasonOf(err), message: se.details ?? se.message };
  }
  throw new Error('the call succeeded but was expected to fail');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.connect(port, '127.0.0.1');
  });
}

export interface RunningProcess {
  pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function track(child: ChildProcess, name: string): RunningProcess {
  let output = '';
  const collect = (stream: NodeJS.ReadableStream | null) =>
    stream?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-200_000);
    });
  collect(child.stdout);
  collect(child.stderr);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    pid: child.pid!,
    output: () => output,
    exited,
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        process.stderr.write(`${name} did not exit after SIGTERM; killing it\n`);
        child.kill('SIGKILL');
      }, graceMs);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A nats-server with JetStream on a free loopback port, storing in its own temporary folder. */
export async function startNats(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = tempDir('ferry-nats');
  const port = await freePort();
  const child = spawn(NATS_SERVER, ['-js', '-sd', dir.path, '-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = track(child, 'nats-server');
  try {
    await waitFor(`nats-server on port ${port}`, async () => ((await canConnect(port)) ? true : undefined), 30_000);
  } catch (err) {
    await proc.stop();
    dir.remove();
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      await proc.stop();
      dir.remove();
    },
  };
}

export interface ServiceProcess extends RunningProcess {
  /** The parsed ready line. */
  ready: Record<string, unknown>;
  address: string;
}

/** Starts services/<service>/src/main.ts with `env` and waits for its "ready" log line. */
export async function spawnService(service: string, env: Record<string, string>, readyTimeoutMs = 90_000): Promise<ServiceProcess> {
  const entry = join(REPO_ROOT, 'services', service, 'src', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(child, service);
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        if (obj.msg === 'ready') resolve(obj);
      } catch {
        // not a log line
      }
    });
    void proc.exited.then(({ code, signal }) => reject(new Error(`${service} exited (${signal ?? code}) before it was ready:\n${proc.output()}`)));
  });
  ready.catch(() => {}); // an exit after a timeout is reported by the timeout
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${service} was not ready within ${readyTimeoutMs} ms:\n${proc.output()}`)), readyTimeoutMs);
  });
  try {
    const line = await Promise.race([ready, timeout]);
    return { ...proc, ready: line, address: String(line.address) };
  } catch (err) {
    await proc.stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
