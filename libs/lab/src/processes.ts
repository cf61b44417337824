// Starting and stopping the lab's OS processes. Each process logs to its own file; a process is
// ready when its log shows a ready line (pino `"msg":"ready"` or the emulated host's `"ready":true`).

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { SERVICE_NODE_FLAGS } from '@ferry/runtime';

export const REPO_ROOT = join(__dirname, '..', '..', '..');

export interface SpawnedProcess {
  name: string;
  pid: number;
  logFile: string;
  /** The ready line, parsed. */
  ready: Record<string, unknown>;
}

export interface SpawnOptions {
  name: string;
  /** A TypeScript entry, relative to the repository root, or an absolute executable with `rawCommand`. */
  entry: string;
  args?: string[];
  env?: Record<string, string>;
  logFile: string;
  /** Outlive this process (ferry lab up) or die with it (tests, ferry demo). */
  detached: boolean;
  /** Run `entry` as an executable instead of a TypeScript file through tsx. */
  rawCommand?: boolean;
  readyTimeoutMs?: number;
  /** For raw commands, how readiness is known (e.g. a port that accepts connections). */
  readyCheck?: () => Promise<Record<string, unknown> | undefined>;
}

export async function spawnProcess(opts: SpawnOptions): Promise<SpawnedProcess> {
  const fd = openSync(opts.logFile, 'a');
  const command = opts.rawCommand ? opts.entry : process.execPath;
  const args = opts.rawCommand
    ? (opts.args ?? [])
    : [...SERVICE_NODE_FLAGS, ...nodeArgs(), '--import', 'tsx', join(REPO_ROOT, opts.entry), ...(opts.args ?? [])];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd],
    detached: opts.detached,
  });
  closeSync(fd);
  if (opts.detached) child.unref();
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exited with ${signal ?? `code ${code}`}`;
  });
  child.once('error', (err) => {
    exited = `failed to start: ${err.message}`;
  });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (exited !== undefined) {
      throw new Error(`${opts.name} ${exited} before it was ready; last log lines:\n${tail(opts.logFile, 15)}`);
    }
    const ready = opts.readyCheck ? await opts.readyCheck() : readyLine(opts.logFile);
    if (ready) return { name: opts.name, pid: child.pid!, logFile: opts.logFile, ready };
    if (Date.now() > deadline) {
      stopPid(child.pid!);
      throw new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs ?? 90_000} ms; last log lines:\n${tail(opts.logFile, 15)}`);
    }
    await delay(100);
  }
}

/**
 * Extra Node flags for the lab's services from FERRY_NODE_ARGS (space-separated), for profiling:
 * Node refuses --cpu-prof in NODE_OPTIONS, so `FERRY_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"`
 * is how a lab's processes write CPU profiles (when they exit, at `ferry lab down`).
 */
function nodeArgs(): string[] {
  return (process.env.FERRY_NODE_ARGS ?? '').split(' ').filter((arg) => arg.length > 0);
}

function readyLine(logFile: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      if (obj.msg === 'ready' || obj.ready === true) return obj;
    } catch {
      // a partial line: read it again next time
    }
  }
  return undefined;
}

export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A detached process whose parent is gone may linger as a zombie until init reaps it: that is dead.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return;
  stopPid(pid);
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await delay(50);
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    while (isAlive(pid)) await delay(50);
  }
}

function stopPid(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port that was free a moment ago (for processes that need a port number up front). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections at host:port within `timeoutMs`. */
export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.connect(port, host, () => done(true));
  });
}
