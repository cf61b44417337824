// The GuestPlatform a guest kernel runs on, inside the domain's worker thread: its memory (the
// domain's shared memory, mapped by this thread), the reservation hypercalls, xenstore over the
// worker's message port, the vCPU pause point, suspend/shutdown, and a NIC (TCP on the host's guest
// network address: 127.0.0.1 unless FERRY_EMU_GUEST_HOST names one that clients elsewhere can reach,
// as in docker-compose and Kubernetes where a guest's client runs in another container).

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import type { DomainMemory } from '@ferry/hypervisor';
import type { GuestKernel, GuestPlatform, GuestXenstore, MemoryBacking } from '@ferry/guest/src/platform';
import type { HostToWorker, ParkReason, WorkerToHost } from '../guest-messages';
import type { HostMemory } from '../host-memory';
import { decreaseReservation, populatePhysmap } from '../physmap';
import { ParkCode, VCPU, VcpuCommand } from '../vcpu-sync';

const HALT_TIMEOUT_MS = 5000;

interface PendingXs {
  resolve(value: string | null): void;
  reject(err: Error): void;
}

export class WorkerPlatform implements GuestPlatform {
  readonly backing: MemoryBacking;
  readonly xenstore: GuestXenstore;
  private kernel: GuestKernel | null = null;
  private readonly home: string;
  private readonly servers = new Set<Server>();
  private readonly sockets = new Set<Socket>();
  private readonly xsPending = new Map<number, PendingXs>();
  private readonly xsWatches = new Map<number, (path: string) => void>();
  private nextRequestId = 1;
  private nextWatchId = 1;
  private halting = false;

  constructor(
    readonly domid: number,
    private readonly memory: DomainMemory,
    private readonly host: HostMemory,
    private readonly vcpu: Int32Array,
    private readonly port: MessagePort,
  ) {
    this.home = `/local/domain/${domid}`;
    this.backing = {
      maxPages: memory.maxPages,
      ram: memory.ramWindows,
      p2m: memory.p2m,
      dirty: memory.dirty,
      control: memory.control,
    };
    this.xenstore = {
      read: (path) => this.xsCall({ type: 'xs-read', id: 0, path: this.absolute(path) }),
      write: async (path, value) => {
        await this.xsCall({ type: 'xs-write', id: 0, path: this.absolute(path), value });
      },
      watch: (path, onChange) => {
        const watchId = this.nextWatchId++;
        this.xsWatches.set(watchId, onChange);
        this.post({ type: 'xs-watch', watchId, path: this.absolute(path) });
      },
    };
  }

  attachKernel(kernel: GuestKernel): void {
    this.kernel = kernel;
  }

  handleMessage(message: HostToWorker): void {
    switch (message.type) {
      case 'xs-reply': {
        const pending = this.xsPending.get(message.id);
        if (!pending) return;
        this.xsPending.delete(message.id);
        if (message.error !== undefined) pending.reject(new Error(message.error));
        else pending.resolve(message.value ?? null);
        return;
      }
      case 'xs-event': {
        const onChange = this.xsWatches.get(message.watchId);
        if (onChange) onChange(this.relative(message.path));
        return;
      }
      case 'pause':
        // The guest is between events (idle, or waiting on I/O): a clean point to park.
        if (Atomics.load(this.vcpu, VCPU.PAUSE_REQUESTED) !== 0) this.park('pause');
        return;
      case 'halt':
        void this.halt();
        return;
    }
  }

  decreaseReservation(pfns: readonly number[]): void {
    decreaseReservation(this.memory, this.host, pfns);
  }

  populatePhysmap(pfns: readonly number[]): void {
    populatePhysmap(this.memory, this.host, pfns, { zeroExisting: true });
  }

  checkpoint(): Promise<void> | undefined {
    if (Atomics.load(this.vcpu, VCPU.PAUSE_REQUESTED) !== 0) this.park('pause');
    return undefined;
  }

  suspend(): Promise<0 | 1> {
    // Parks until the toolstack resumes this domain in place (a cancelled migration). A guest that
    // moved never returns here: it runs on the destination from kernel.resume().
    this.park('suspend');
    return Promise.resolve(1);
  }

  shutdown(reason: 'poweroff' | 'crash', message?: string): void {
    this.park(reason, message); // never returns: the domain waits to be destroyed
  }

  listen(onConnection: (socket: Socket) => void): Promise<string> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
        onConnection(socket);
      });
      server.once('error', reject);
      const nicHost = process.env.FERRY_EMU_GUEST_HOST || '127.0.0.1';
      server.listen(0, nicHost, () => {
        server.off('error', reject);
        this.servers.add(server);
        const port = (server.address() as AddressInfo).port;
        resolve(nicHost.includes(':') ? `[${nicHost}]:${port}` : `${nicHost}:${port}`);
      });
    });
  }

  unlisten(): Promise<void> {
    for (const server of this.servers) server.close();
    this.servers.clear();
    // server.close() stops accepting at once; its callback would wait for every open connection.
    return new Promise((resolve) => setImmediate(resolve));
  }

  log(message: string): void {
    this.post({ type: 'log', message: String(message) });
  }

  /** An exception escaped the kernel: the domain crashes (SHUTDOWN_crash). */
  crash(err: unknown): void {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.shutdown('crash', message);
  }

  /**
   * Blocks this thread until the host lets the vCPU run again (never, for poweroff/crash), serving
   * the host's commands meanwhile. See vcpu-sync.ts.
   */
  private park(reason: ParkReason, message?: string): void {
    const code =
      reason === 'pause' ? ParkCode.PAUSED : reason === 'suspend' ? ParkCode.SUSPENDED : ParkCode.STOPPED;
    Atomics.store(this.vcpu, VCPU.PARKED, code);
    this.post(message === undefined ? { type: 'parked', reason } : { type: 'parked', reason, message });
    for (;;) {
      Atomics.wait(this.vcpu, VCPU.COMMAND, VcpuCommand.NONE);
      const command = Atomics.exchange(this.vcpu, VCPU.COMMAND, VcpuCommand.NONE);
      if (command === VcpuCommand.SAVE_CONTEXT) {
        this.postContext();
      } else if (command === VcpuCommand.EXIT) {
        // No guest code runs again: the memory goes, then the thread.
        this.exitNow();
      } else if (
        (command === VcpuCommand.RUN && code === ParkCode.PAUSED && Atomics.load(this.vcpu, VCPU.PAUSE_REQUESTED) === 0) ||
        (command === VcpuCommand.RESUME_SUSPENDED && code === ParkCode.SUSPENDED)
      ) {
        Atomics.store(this.vcpu, VCPU.PARKED, ParkCode.RUNNING);
        this.post({ type: 'running' });
        return;
      }
    }
  }

  private postContext(): void {
    try {
      if (!this.kernel) throw new Error('the guest kernel is not loaded');
      const context = this.kernel.saveContext();
      this.post({ type: 'context', context });
    } catch (err) {
      this.post({ type: 'context-error', message: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Graceful stop on destroy: let the kernel halt, drop the network, unmap memory, end the thread. */
  private async halt(): Promise<void> {
    if (this.halting) return;
    this.halting = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.kernel?.halt(),
        new Promise((resolve) => (timer = setTimeout(resolve, HALT_TIMEOUT_MS))),
      ]);
    } catch (err) {
      this.log(`kernel.halt() failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
    this.exitNow();
  }

  /** Drops the network, closes guest memory (mappings and descriptors) and ends the thread. */
  private exitNow(): never {
    for (const server of this.servers) server.close();
    for (const socket of this.sockets) socket.destroy();
    this.memory.close();
    this.post({ type: 'halted' });
    process.exit(0);
  }

  private xsCall(request: Extract<WorkerToHost, { type: 'xs-read' | 'xs-write' }>): Promise<string | null> {
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.xsPending.set(id, { resolve, reject });
      this.post({ ...request, id });
    });
  }

  private absolute(path: string): string {
    return path.startsWith('/') ? path : `${this.home}/${path}`;
  }

  private relative(path: string): string {
    return path.startsWith(`${this.home}/`) ? path.slice(this.home.length + 1) : path;
  }

  private post(message: WorkerToHost): void {
    this.port.postMessage(message);
  }
}
