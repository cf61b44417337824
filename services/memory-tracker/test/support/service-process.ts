// Runs a Ferry service as a real process (node --import tsx services/<name>/src/main.ts), waits for
// its "ready" log line, and stops it by its pid.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const REPO_ROOT = join(__dirname, '..', '..', '..', '..');

export interface ServiceProcess {
  name: string;
  pid: number;
  /** The ready line, parsed. */
  ready: Record<string, unknown>;
  /** Every log line so far. */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (or `signal`) and wait for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startService(service: string, env: Record<string, string>, readyTimeoutMs = 60_000): Promise<ServiceProcess> {
  const entry = join(REPO_ROOT, 'services', service, 'src', 'main.ts');
  const child: ChildProcess = spawn(process.execPath, ['--import', pathToFileURL(require.resolve('tsx')).href, entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, FERRY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  createInterface({ input: child.stderr! }).on('line', (line) => lines.push(line));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${service} was not ready within ${readyTimeoutMs} ms:\n${lines.join('\n')}`));
    }, readyTimeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        if (obj.msg === 'ready') {
          clearTimeout(timer);
          resolve(obj);
        }
      } catch {
        // not a JSON line
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${service} exited (code ${code}, signal ${signal}) before it was ready:\n${lines.join('\n')}`));
    });
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    }
    return exited;
  };
  return { name: service, pid: child.pid!, ready, lines, exited, stop };
}
