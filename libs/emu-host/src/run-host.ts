// Runs one emulated Xen host in this process until it is told to stop: the hypercall socket at
// <dir>/xen.sock, one JSON ready line {"ready":true,"name","socket","pid"} on stdout once it
// listens, and on SIGTERM/SIGINT (or, with exitWithStdin, when stdin ends because the parent went
// away) every domain destroyed, every shared memory object unlinked and the socket removed.

import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HYPERCALL_SOCKET_NAME, PAGE_SIZE } from '@ferry/hypervisor';
import type { Logger } from 'pino';
import { DEFAULT_KERNEL_MODULE, EmuHost } from './emu-host';
import { HypercallServer } from './hypercall-server';
import { createHostLogger } from './logger';

export interface RunEmuHostOptions {
  name: string;
  dir: string;
  capacityBytes: number;
  /** Guest kernel module every domain runs (default @ferry/guest). */
  kernelModule?: string;
  /** Stop when stdin ends (the spawning parent died). */
  exitWithStdin?: boolean;
  logger?: Logger;
}

/** Resolves once the host has stopped cleanly; rejects if it stopped because of an error. */
export async function runEmuHostMain(opts: RunEmuHostOptions): Promise<void> {
  const capacityPages = Math.floor(opts.capacityBytes / PAGE_SIZE);
  if (!(capacityPages >= 1)) throw new Error(`host capacity ${opts.capacityBytes} bytes is less than one page`);
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, HYPERCALL_SOCKET_NAME);
  const logger = opts.logger ?? createHostLogger(opts.name);
  const kernelModule = opts.kernelModule ?? DEFAULT_KERNEL_MODULE;

  const host = new EmuHost({ name: opts.name, capacityPages, kernelModule, logger });
  const server = new HypercallServer(host, logger);
  await server.listen(socketPath);

  let failure: Error | null = null;
  const stopped = new Promise<void>((resolveStopped) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ why }, 'emulated host stopping');
      try {
        await server.close();
        await host.destroyAll();
        rmSync(socketPath, { force: true });
        logger.info('emulated host stopped');
      } catch (err) {
        logger.error({ err: err instanceof Error ? err.stack : String(err) }, 'emulated host did not stop cleanly');
        failure ??= err instanceof Error ? err : new Error(String(err));
      }
      resolveStopped();
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    // A bug must not leave shared memory behind: clean up, then report the failure.
    process.on('uncaughtException', (err) => {
      logger.fatal({ err: err.stack ?? err.message }, 'uncaught exception in the emulated host');
      failure ??= err;
      void stop('uncaught exception');
    });
    if (opts.exitWithStdin) {
      process.stdin.on('end', () => void stop('stdin closed'));
      process.stdin.on('error', () => void stop('stdin failed'));
      process.stdin.resume();
    }
  });

  logger.info({ socket: socketPath, capacityPages, kernel: kernelModule }, 'emulated host ready');
  process.stdout.write(`${JSON.stringify({ ready: true, name: opts.name, socket: socketPath, pid: process.pid })}\n`);
  await stopped;
  if (failure) throw failure;
}
