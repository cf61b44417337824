// Test support shared by the host-agent and balloon-manager tests: real service processes started
// from their main.ts and awaited on their "ready" line, and the status + reason of a failed gRPC call.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { reasonOf } from '@ferry/runtime';
import type { ServiceError } from '@grpc/grpc-js';

export const REPO_ROOT = join(__dirname, '..', '..', '..', '..');

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
