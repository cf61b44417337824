// Starts an emulated Xen host as a child process and waits until its hypercall socket listens.
// Used by tests, the lab and the probe. The child exits by itself if this process goes away (its
// stdin is a pipe from us), so a crashed parent does not leave hosts and shared memory behind.

import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { HYPERCALL_SOCKET_NAME, PAGE_SIZE, hostShmPrefix } from '@ferry/hypervisor';
import { listSharedMemory, unlinkSharedMemory } from '@ferry/shm';

const MAIN = join(__dirname, 'main.ts');
const LOG_TAIL_LINES = 200;

export interface SpawnEmuHostOptions {
  name: string;
  /** The host's folder; its hypercall socket is <dir>/xen.sock. Created if missing. */
  dir: string;
  capacityBytes: number;
  /** Guest kernel module for every domain (default @ferry/guest). */
  kernelModule?: string;
  readyTimeoutMs?: number;
  /** 'buffer' (default) keeps the host's log lines for logTail(); 'inherit' sends them to our stderr. */
  logs?: 'buffer' | 'inherit';
  env?: NodeJS.ProcessEnv;
}

export interface EmuHostProcess {
  name: string;
  dir: string;
  socketPath: string;
  pid: number;
  /** Prefix of every shared memory object this host creates. */
  shmPrefix: string;
  /** Settles when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The host's last log lines (with logs: 'buffer'). */
  logTail(): string;
  /** SIGTERM, wait for a clean exit (SIGKILL after stopTimeoutMs), and remove what a killed host left. */
  stop(stopTimeoutMs?: number): Promise<void>;
}

export async function spawnEmuHost(opts: SpawnEmuHostOptions): Promise<EmuHostProcess> {
  if (!Number.isSafeInteger(opts.capacityBytes) || opts.capacityBytes < PAGE_SIZE) {
    throw new RangeError(`capacityBytes must be a whole number of bytes, at least one page; got ${opts.capacityBytes}`);
  }
  const args = [
    '--import',
    pathToFileURL(require.resolve('tsx')).href,
    MAIN,
    '--name',
    opts.name,
    '--dir',
    opts.dir,
    '--capacity',
    String(opts.capacityBytes),
    '--exit-with-stdin',
  ];
  if (opts.kernelModule) args.push('--kernel', opts.kernelModule);
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', opts.logs === 'inherit' ? 'inherit' : 'pipe'],
    env: opts.env ?? process.env,
  });
  const tail: string[] = [];
  if (child.stderr) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const logTail = () => tail.join('\n');

  const ready = await waitForReadyLine(child, exited, opts.readyTimeoutMs ?? 60_000, logTail, opts.name);
  const socketPath = ready.socket;
  const shmPrefix = hostShmPrefix(opts.name, ready.pid);

  let stopping: Promise<void> | null = null;
  const stop = (stopTimeoutMs = 30_000): Promise<void> => {
    stopping ??= (async () => {
      let killed = false;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      const { code } = await exited;
      child.stdin?.destroy();
      if (killed || code !== 0) {
        // The host could not clean up after itself: do it here.
        for (const name of listSharedMemory(shmPrefix)) unlinkSharedMemory(name);
        rmSync(socketPath, { force: true });
      }
    })();
    return stopping;
  };

  return { name: opts.name, dir: opts.dir, socketPath, pid: ready.pid, shmPrefix, exited, logTail, stop };
}

function waitForReadyLine(
  child: ChildProcess,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
  logTail: () => string,
  name: string,
): Promise<{ socket: string; pid: number }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, value?: { socket: string; pid: number }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`emulated host ${name} was not ready within ${timeoutMs} ms\n${logTail()}`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      try {
        const message = JSON.parse(line) as { ready?: boolean; socket?: string; pid?: number };
        if (message.ready !== true || typeof message.socket !== 'string' || typeof message.pid !== 'number') {
          throw new Error(`unexpected first line: ${line}`);
        }
        if (!message.socket.endsWith(HYPERCALL_SOCKET_NAME)) throw new Error(`unexpected socket path ${message.socket}`);
        finish(null, { socket: message.socket, pid: message.pid });
      } catch (err) {
        child.kill('SIGKILL');
        finish(new Error(`emulated host ${name} did not report ready: ${(err as Error).message}\n${logTail()}`));
      }
    });
    // Keep draining stdout so the child never blocks on a full pipe.
    child.stdout!.resume();
    void exited.then(({ code, signal }) =>
      finish(new Error(`emulated host ${name} exited (code ${code}, signal ${signal}) before it was ready\n${logTail()}`)),
    );
  });
}
