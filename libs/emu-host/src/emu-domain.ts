// One domain of the emulated host: its shared memory, its state (running / paused / shut down with
// a reason), its vCPU (a GuestRunner once it has started), log-dirty mode, and its vCPU context
// while it waits to be restored.
//
// Operations that stop or start the vCPU are serialised per domain, so a pause, an unpause and a
// context read never interleave. Destroy does not wait behind them: it ends the vCPU at once.

import {
  DomainStateCode,
  HypervisorError,
  bitmapBytes,
  type DomainInfo,
  type DomainMemory,
  type DomainState,
  type LogDirtyStats,
  type ShutdownReason,
  type WorkloadSpec,
} from '@ferry/hypervisor';
import type { Logger } from 'pino';
import { GuestRunner } from './guest-runner';
import type { HostMemory } from './host-memory';
import { populatePhysmap } from './physmap';
import type { Xenstore } from './xenstore';

const LOG_DIRTY = 0; // CONTROL.LOG_DIRTY of the guest platform contract
const FAULT_COUNT = 1; // CONTROL.FAULT_COUNT
const PAUSE_TIMEOUT_MS = 30_000;
/** vCPU contexts are small (registers, a PRNG, a few pointers); refuse anything absurd. */
const MAX_CONTEXT_BYTES = 1 << 20;

export interface EmuDomainDeps {
  hostMemory: HostMemory;
  xenstore: Xenstore;
  logger: Logger;
  kernelModule: string;
  /** The domain shut down (suspend, poweroff, crash): the host fires @releaseDomain. */
  onShutdown(domain: EmuDomain): void;
}

export class EmuDomain {
  private stateValue: DomainState = 'paused';
  private reason: ShutdownReason | null = null;
  private runner: GuestRunner | null = null;
  /** A restored domain's vCPU, started ahead of its first unpause (see prestartVcpu). */
  private standby: { runner: GuestRunner; started: Promise<boolean> } | null = null;
  private pendingContext: Uint8Array | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  constructor(
    readonly domid: number,
    readonly name: string,
    readonly uuid: string,
    readonly vcpus: number,
    readonly memory: DomainMemory,
    private readonly deps: EmuDomainDeps,
  ) {}

  get maxPages(): number {
    return this.memory.maxPages;
  }

  get state(): DomainState {
    return this.stateValue;
  }

  get logDirty(): boolean {
    return Atomics.load(this.memory.control, LOG_DIRTY) === 1;
  }

  info(): DomainInfo {
    return {
      domid: this.domid,
      name: this.name,
      uuid: this.uuid,
      state: this.stateValue,
      shutdownReason: this.stateValue === 'shutdown' ? this.reason : null,
      nrPages: this.memory.nrPages,
      maxPages: this.memory.maxPages,
      vcpus: this.vcpus,
      logDirty: this.logDirty,
    };
  }

  /**
   * A restored domain starts its vCPU thread (kernel loaded, no guest code running) while pages
   * arrive, so the first unpause only hands it the context: starting a worker thread takes a
   * hundred milliseconds or more, which would otherwise all be downtime. If it fails, the
   * unpause starts the vCPU the ordinary way.
   */
  prestartVcpu(): void {
    if (this.runner || this.standby) return;
    const runner = this.newRunner('standby', {});
    const started = runner.start().then(
      () => true,
      (err: unknown) => {
        this.deps.logger.warn({ domid: this.domid, err: String(err) }, 'standby vCPU did not start; the unpause will start one');
        void runner.halt();
        return false;
      },
    );
    this.standby = { runner, started };
  }

  /** Starts a new guest (xl create): the vCPU boots the kernel with the workload. */
  async boot(workload: WorkloadSpec): Promise<void> {
    await this.startVcpu('boot', { workload });
  }

  pause(): Promise<void> {
    return this.serialized(async () => {
      this.requireAlive();
      if (this.stateValue === 'shutdown') throw this.wrongState('pause');
      if (this.stateValue === 'paused') return;
      const reason = await this.runner!.pause(PAUSE_TIMEOUT_MS);
      if (reason === 'pause') this.setState('paused');
      // Otherwise the guest suspended or stopped first; onVcpuShutdown has recorded it.
    });
  }

  unpause(): Promise<void> {
    return this.serialized(async () => {
      this.requireAlive();
      if (this.stateValue === 'shutdown') throw this.wrongState('unpause');
      if (this.stateValue === 'running') return;
      if (!this.runner) {
        // A restored domain's first unpause: its vCPU starts from the context the restore set.
        if (!this.pendingContext) {
          throw new HypervisorError('EBUSY', `domain ${this.domid} has no vCPU context yet; set it before unpausing`);
        }
        const context = this.pendingContext;
        const standby = this.standby;
        this.standby = null;
        if (standby && (await standby.started)) {
          this.runner = standby.runner;
          this.setState('running');
          standby.runner.resumeFromStandby(context);
        } else {
          await this.startVcpu('resume', { context });
        }
        this.pendingContext = null;
        return;
      }
      this.setState('running');
      await this.runner.unpause();
    });
  }

  resumeSuspended(): Promise<void> {
    return this.serialized(async () => {
      this.requireAlive();
      if (this.stateValue !== 'shutdown' || this.reason !== 'suspend' || !this.runner) {
        throw new HypervisorError('EBUSY', `domain ${this.domid} is not suspended (it is ${this.describeState()})`);
      }
      this.reason = null;
      this.setState('running');
      await this.runner.resumeSuspended();
    });
  }

  getVcpuContext(): Promise<Uint8Array> {
    return this.serialized(async () => {
      this.requireAlive();
      if (this.stateValue === 'running') {
        throw new HypervisorError('EBUSY', `domain ${this.domid} is running; pause or suspend it before reading its vCPU context`);
      }
      if (!this.runner) {
        if (!this.pendingContext) throw new HypervisorError('EBUSY', `domain ${this.domid} has no vCPU context yet`);
        return new Uint8Array(this.pendingContext);
      }
      return this.runner.saveContext();
    });
  }

  setVcpuContext(context: Uint8Array): Promise<void> {
    return this.serialized(async () => {
      this.requireAlive();
      if (this.runner || this.stateValue !== 'paused') {
        throw new HypervisorError(
          'EBUSY',
          `domain ${this.domid} has already run; a vCPU context can only be set on a restored domain before its first unpause`,
        );
      }
      if (context.byteLength > MAX_CONTEXT_BYTES) {
        throw new HypervisorError('EINVAL', `a vCPU context of ${context.byteLength} bytes exceeds ${MAX_CONTEXT_BYTES}`);
      }
      this.pendingContext = new Uint8Array(context);
    });
  }

  /** XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY: clear the bitmap and start tracking. */
  logDirtyEnable(): void {
    this.requireAlive();
    if (this.logDirty) throw new HypervisorError('EBUSY', `log-dirty is already enabled for domain ${this.domid}`);
    // Nobody sets bits while tracking is off, so a plain fill is safe here.
    this.memory.dirty.fill(0);
    Atomics.store(this.memory.control, FAULT_COUNT, 0);
    Atomics.store(this.memory.control, LOG_DIRTY, 1);
  }

  /** XEN_DOMCTL_SHADOW_OP_OFF. */
  logDirtyDisable(): void {
    this.requireAlive();
    Atomics.store(this.memory.control, LOG_DIRTY, 0);
  }

  /**
   * CLEAN (reset = true) or PEEK. CLEAN takes each word with Atomics.exchange, so a bit the guest
   * sets at the same moment lands either in this bitmap or in the next one, never nowhere.
   * FINAL is the last CLEAN of a domain that no longer runs.
   */
  logDirtyRead(reset: boolean, final: boolean): { bitmap: Uint8Array; stats: LogDirtyStats } {
    this.requireAlive();
    if (!this.logDirty) throw new HypervisorError('EBUSY', `log-dirty is not enabled for domain ${this.domid}`);
    if (final && this.stateValue === 'running') {
      throw new HypervisorError('EBUSY', `FINAL CLEAN needs domain ${this.domid} paused or suspended; it is running`);
    }
    const dirty = this.memory.dirty;
    const words = new Int32Array(dirty.length);
    let dirtyCount = 0;
    for (let i = 0; i < dirty.length; i++) {
      if (Atomics.load(dirty, i) === 0) continue;
      let w = reset ? Atomics.exchange(dirty, i, 0) : Atomics.load(dirty, i);
      words[i] = w;
      while (w !== 0) {
        w &= w - 1;
        dirtyCount++;
      }
    }
    const faultCount = reset
      ? Atomics.exchange(this.memory.control, FAULT_COUNT, 0)
      : Atomics.load(this.memory.control, FAULT_COUNT);
    return {
      bitmap: new Uint8Array(words.buffer, 0, bitmapBytes(this.maxPages)),
      stats: { dirtyCount, faultCount: faultCount >>> 0 },
    };
  }

  /** Populates pfns for a restore's writePages (the domain is paused: its vCPU cannot race us). */
  populateForRestore(pfns: ArrayLike<number>): number {
    this.requireAlive();
    if (this.stateValue !== 'paused') {
      throw new HypervisorError('EBUSY', `domain ${this.domid} is ${this.describeState()}; pages are written into a paused domain only`);
    }
    return populatePhysmap(this.memory, this.deps.hostMemory, pfns, { zeroExisting: false, allocate: true });
  }

  /** Ends the vCPU and marks the memory dead. The host then releases and unlinks it. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.memory.state = DomainStateCode.DESTROYED;
    const standby = this.standby;
    this.standby = null;
    await Promise.all([this.runner?.halt(), standby?.runner.halt()]);
  }

  private async startVcpu(mode: 'boot' | 'resume', input: { workload?: WorkloadSpec; context?: Uint8Array }): Promise<void> {
    const runner = this.newRunner(mode, input);
    this.runner = runner;
    this.setState('running');
    try {
      await runner.start();
    } catch (err) {
      this.runner = null;
      this.setState('paused');
      await runner.halt();
      throw err;
    }
  }

  private newRunner(mode: 'boot' | 'resume' | 'standby', input: { workload?: WorkloadSpec; context?: Uint8Array }): GuestRunner {
    return new GuestRunner({
      domid: this.domid,
      names: this.memory.names,
      kernelModule: this.deps.kernelModule,
      hostMemory: this.deps.hostMemory,
      mode,
      workload: input.workload,
      context: input.context,
      xenstore: this.deps.xenstore,
      logger: this.deps.logger,
      onShutdown: (reason, message) => this.onVcpuShutdown(reason, message),
    });
  }

  private onVcpuShutdown(reason: ShutdownReason, message?: string): void {
    if (this.destroyed) return;
    this.reason = reason;
    this.setState('shutdown');
    if (message && reason === 'crash') this.deps.logger.error({ domid: this.domid }, `domain crashed: ${message}`);
    this.deps.onShutdown(this);
  }

  private setState(state: DomainState): void {
    this.stateValue = state;
    if (this.destroyed) return;
    this.memory.state =
      state === 'running' ? DomainStateCode.RUNNING : state === 'paused' ? DomainStateCode.PAUSED : DomainStateCode.SHUTDOWN;
  }

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op, op);
    this.queue = result.catch(() => {});
    return result;
  }

  private requireAlive(): void {
    if (this.destroyed) throw new HypervisorError('ESRCH', `domain ${this.domid} has been destroyed`);
  }

  private wrongState(op: string): HypervisorError {
    return new HypervisorError('EBUSY', `cannot ${op} domain ${this.domid}: it is ${this.describeState()}`);
  }

  private describeState(): string {
    return this.stateValue === 'shutdown' ? `shut down (${this.reason})` : this.stateValue;
  }
}
