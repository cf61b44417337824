// The host's handle on one guest's vCPU: the worker thread that runs the guest kernel. It starts
// the worker, serves the guest's xenstore traffic, and stops/starts the vCPU with the park
// protocol of vcpu-sync.ts.

import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { HypervisorError, type DomainMemoryNames, type ShutdownReason, type WorkloadSpec } from '@ferry/hypervisor';
import type { Logger } from 'pino';
import type { GuestWorkerData, HostToWorker, ParkReason, WorkerToHost } from './guest-messages';
import type { HostMemory } from './host-memory';
import { VCPU, VcpuCommand, createVcpuSync } from './vcpu-sync';
import type { WatchHandle, Xenstore } from './xenstore';

const WORKER_ENTRY = join(__dirname, 'guest-worker', 'entry.js');
const HALT_GRACE_MS = 10_000;

export interface GuestRunnerOptions {
  domid: number;
  names: DomainMemoryNames;
  kernelModule: string;
  hostMemory: HostMemory;
  mode: 'boot' | 'resume' | 'standby';
  workload?: WorkloadSpec;
  context?: Uint8Array;
  xenstore: Xenstore;
  logger: Logger;
  /** The vCPU stopped by itself: SCHEDOP_shutdown(suspend | poweroff | crash), or the worker died. */
  onShutdown(reason: ShutdownReason, message?: string): void;
}

type Waiter<T> = { resolve(value: T): void; reject(err: Error): void };

export class GuestRunner {
  private readonly vcpu = createVcpuSync();
  private worker: Worker | null = null;
  private parkedFor: ParkReason | null = null;
  private exited = false;
  private halting = false;
  private readonly parkWaiters: Waiter<ParkReason>[] = [];
  private readonly runWaiters: Waiter<void>[] = [];
  private readonly contextWaiters: Waiter<Uint8Array>[] = [];
  private readonly watches: WatchHandle[] = [];
  private exitPromise: Promise<void> = Promise.resolve();
  private standbyDone = false;

  constructor(private readonly opts: GuestRunnerOptions) {}

  /** Why the vCPU is parked, or null while it runs. */
  get parked(): ParkReason | null {
    return this.parkedFor;
  }

  get alive(): boolean {
    return this.worker !== null && !this.exited;
  }

  /** Starts the worker; resolves once the kernel is loaded and about to boot or resume. */
  start(timeoutMs = 60_000): Promise<void> {
    const { opts } = this;
    const workerData: GuestWorkerData = {
      domid: opts.domid,
      names: opts.names,
      kernelModule: opts.kernelModule,
      mode: opts.mode,
      workload: opts.workload,
      context: opts.context,
      vcpuSync: this.vcpu.buffer as SharedArrayBuffer,
      hostMemory: opts.hostMemory.buffer,
      hostTotalPages: opts.hostMemory.totalPages,
    };
    // execArgv [] : the worker registers tsx itself (entry.js) and inherits no test/debug flags.
    const worker = new Worker(WORKER_ENTRY, {
      workerData,
      execArgv: [],
      stdout: true,
      stderr: true,
      name: `domain-${opts.domid}`,
    });
    this.worker = worker;
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: worker[stream] }).on('line', (line) =>
        opts.logger.info({ domid: opts.domid, stream }, `guest ${stream}: ${line}`),
      );
    }
    this.exitPromise = new Promise((resolve) => worker.once('exit', () => resolve()));

    return new Promise<void>((resolve, reject) => {
      let online = false;
      const timer = setTimeout(() => {
        if (online) return;
        reject(new HypervisorError('ETIMEDOUT', `domain ${opts.domid}: the guest worker did not start within ${timeoutMs} ms`));
        void this.halt();
      }, timeoutMs);
      worker.on('message', (message: WorkerToHost) => {
        if (message.type === 'online') {
          online = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        this.onMessage(message);
      });
      worker.on('error', (err) => {
        const reason = err.stack ?? err.message;
        if (!online) {
          clearTimeout(timer);
          reject(new HypervisorError('EIO', `domain ${opts.domid}: the guest failed to start: ${err.message}`));
        }
        opts.logger.error({ domid: opts.domid, err: reason }, 'guest vCPU died with an exception');
        if (!this.halting && this.parkedFor !== 'crash') {
          this.parkedFor = 'crash';
          opts.onShutdown('crash', err.message);
        }
      });
      worker.on('exit', (code) => {
        this.exited = true;
        for (const w of this.watches) w.close();
        this.watches.length = 0;
        const gone = new HypervisorError('EBUSY', `domain ${opts.domid}: the guest's vCPU has stopped`);
        for (const list of [this.parkWaiters, this.runWaiters, this.contextWaiters] as Waiter<never>[][]) {
          for (const w of list.splice(0)) w.reject(gone);
        }
        if (!online) {
          clearTimeout(timer);
          reject(new HypervisorError('EIO', `domain ${opts.domid}: the guest worker exited (code ${code}) before starting`));
        }
        if (!this.halting && this.parkedFor !== 'crash') {
          this.parkedFor = 'crash';
          opts.onShutdown('crash', `the guest worker exited with code ${code}`);
        }
      });
    });
  }

  /**
   * Parks the vCPU at the guest's next clean point. Resolves with why it parked: normally 'pause',
   * or a shutdown reason if the guest suspended or stopped first.
   */
  async pause(timeoutMs: number): Promise<ParkReason> {
    if (this.parkedFor !== null) return this.parkedFor;
    this.requireAlive();
    Atomics.store(this.vcpu, VCPU.PAUSE_REQUESTED, 1);
    const parked = this.waitFor(this.parkWaiters, timeoutMs, 'reach a pause point');
    this.post({ type: 'pause' });
    try {
      return await parked;
    } catch (err) {
      Atomics.store(this.vcpu, VCPU.PAUSE_REQUESTED, 0);
      throw err;
    }
  }

  /** Lets a paused vCPU run again. */
  async unpause(timeoutMs = 30_000): Promise<void> {
    Atomics.store(this.vcpu, VCPU.PAUSE_REQUESTED, 0);
    if (this.parkedFor !== 'pause') return;
    const running = this.waitFor(this.runWaiters, timeoutMs, 'resume running');
    this.command(VcpuCommand.RUN);
    await running;
  }

  /** Returns 1 from the guest's suspend() (the suspend was cancelled; it continues in place). */
  async resumeSuspended(timeoutMs = 30_000): Promise<void> {
    if (this.parkedFor !== 'suspend') {
      throw new HypervisorError('EBUSY', `domain ${this.opts.domid} is not suspended`);
    }
    const running = this.waitFor(this.runWaiters, timeoutMs, 'resume after suspend');
    this.command(VcpuCommand.RESUME_SUSPENDED);
    await running;
  }

  /** kernel.saveContext() of the parked vCPU. */
  async saveContext(timeoutMs = 30_000): Promise<Uint8Array> {
    if (this.parkedFor === null) {
      throw new HypervisorError('EBUSY', `domain ${this.opts.domid} is running; pause or suspend it first`);
    }
    this.requireAlive();
    const context = this.waitFor(this.contextWaiters, timeoutMs, 'save its vCPU context');
    this.command(VcpuCommand.SAVE_CONTEXT);
    return context;
  }

  /** A standby vCPU (mode 'standby') starts running the guest from this context. */
  resumeFromStandby(context: Uint8Array): void {
    if (this.opts.mode !== 'standby' || this.standbyDone) throw new Error('resumeFromStandby: this vCPU is not in standby');
    this.requireAlive();
    this.standbyDone = true;
    this.post({ type: 'resume', context });
  }

  /**
   * Stops the guest for good and ends the thread, which closes the guest memory it opened: a
   * running guest (or a standby vCPU, idle in its event loop) gets kernel.halt() by message; a parked
   * one runs no code and takes the EXIT command from the vCPU words instead (a guest that parks
   * while halting takes it too). Terminating the thread is the last resort only: it would leave the
   * thread's descriptors of the memory objects open.
   */
  async halt(): Promise<void> {
    this.halting = true;
    const worker = this.worker;
    if (!worker || this.exited) return;
    // Both: the host's view of whether the vCPU is parked may lag the worker's by a message.
    this.command(VcpuCommand.EXIT);
    this.post({ type: 'halt' });
    const graceful = await Promise.race([
      this.exitPromise.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), HALT_GRACE_MS).unref()),
    ]);
    if (graceful) return;
    this.opts.logger.warn({ domid: this.opts.domid }, 'guest did not halt in time; terminating its vCPU');
    await worker.terminate();
    await this.exitPromise;
  }

  private onMessage(message: WorkerToHost): void {
    const { xenstore, logger, domid } = this.opts;
    switch (message.type) {
      case 'xs-read':
      case 'xs-write': {
        try {
          if (message.type === 'xs-read') {
            this.post({ type: 'xs-reply', id: message.id, value: xenstore.read(message.path) });
          } else {
            xenstore.write(message.path, message.value);
            this.post({ type: 'xs-reply', id: message.id });
          }
        } catch (err) {
          this.post({ type: 'xs-reply', id: message.id, error: (err as Error).message });
        }
        return;
      }
      case 'xs-watch': {
        try {
          this.watches.push(
            xenstore.watch(message.path, (path) => this.post({ type: 'xs-event', watchId: message.watchId, path })),
          );
        } catch (err) {
          logger.warn({ domid, path: message.path }, `guest watch refused: ${(err as Error).message}`);
        }
        return;
      }
      case 'parked': {
        this.parkedFor = message.reason;
        if (message.reason !== 'pause') {
          this.opts.onShutdown(message.reason, message.message);
          if (message.message) logger.warn({ domid, reason: message.reason }, message.message);
        } else if (this.parkWaiters.length === 0 && Atomics.load(this.vcpu, VCPU.PAUSE_REQUESTED) === 0) {
          // A pause that timed out was reached late: nobody wants it any more.
          this.command(VcpuCommand.RUN);
        }
        for (const w of this.parkWaiters.splice(0)) w.resolve(message.reason);
        return;
      }
      case 'running':
        this.parkedFor = null;
        for (const w of this.runWaiters.splice(0)) w.resolve();
        return;
      case 'context':
        this.contextWaiters.shift()?.resolve(new Uint8Array(message.context));
        return;
      case 'context-error':
        this.contextWaiters.shift()?.reject(new HypervisorError('EIO', `domain ${domid}: saveContext failed: ${message.message}`));
        return;
      case 'log':
        logger.info({ domid }, `guest: ${message.message}`);
        return;
      case 'halted':
      case 'online':
        return;
    }
  }

  private waitFor<T>(list: Waiter<T>[], timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        reject(new HypervisorError('ETIMEDOUT', `domain ${this.opts.domid}: the guest did not ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      list.push(waiter);
    });
  }

  private command(command: VcpuCommand): void {
    Atomics.store(this.vcpu, VCPU.COMMAND, command);
    Atomics.notify(this.vcpu, VCPU.COMMAND);
  }

  private post(message: HostToWorker): void {
    if (this.worker && !this.exited) this.worker.postMessage(message);
  }

  private requireAlive(): void {
    if (!this.alive) throw new HypervisorError('EBUSY', `domain ${this.opts.domid}: the guest's vCPU has stopped`);
  }
}
