// The guest kernel: boots a workload into fresh memory or continues one from memory + vCPU
// context, and runs its activities: the workload loop, the balloon worker, the network service,
// the xenstore reports and the control/shutdown handler (suspend for migration).
//
// Run-time JS objects here are caches of what is in guest memory and the vCPU registers: resume()
// rebuilds every one of them from those two, so a guest that was copied to another host goes on
// with all its data.

import type { WorkloadSpec } from '@ferry/hypervisor';
import { BalloonList } from './balloon-list';
import { BalloonDriver, type BalloonHooks } from './balloon';
import { GuestOs } from './guest-os';
import { SUPERBLOCK_PFN } from './layout';
import { LineServer } from './line-server';
import { PageAllocator } from './page-allocator';
import { PhysMem } from './phys-mem';
import type { GuestKernel, GuestPlatform } from './platform';
import { RunGate } from './run-gate';
import { runWorkload } from './scheduler';
import { watchShutdown } from './shutdown-watch';
import { GUEST_PATHS, StatusReporter } from './status-reporter';
import { readSuperblock, setWorkloadRoot, writeSuperblock } from './superblock';
import { Vcpu } from './vcpu';
import { workloadProgram } from './workloads';
import type { Workload } from './workloads/workload';

export interface KernelOptions {
  /** Balloon worker hooks (tests record its back-off delays). */
  balloon?: BalloonHooks;
}

/** What tests and the emulated host may look at in a running guest. */
export interface GuestIntrospection {
  readonly os: GuestOs;
  readonly workload: Workload;
  readonly balloon: BalloonDriver;
  /** "host:port" of the network service, when the workload has one and it is listening. */
  readonly serviceAddress: string | null;
  /** Checks every data item of the workload; returns the failures (they are also counted in errors). */
  verifyAll(): number;
}

export type FerryKernel = GuestKernel & {
  /** The running guest, or null before boot/resume and after halt. */
  readonly guest: GuestIntrospection | null;
};

export function createKernel(options: KernelOptions = {}): FerryKernel {
  return new Kernel(options);
}

class Kernel implements GuestKernel {
  private running: RunningGuest | null = null;
  private vcpu: Vcpu | null = null;

  constructor(private readonly options: KernelOptions) {}

  get guest(): GuestIntrospection | null {
    return this.running;
  }

  async boot(platform: GuestPlatform, spec: WorkloadSpec): Promise<void> {
    this.assertIdle();
    const mem = new PhysMem(platform.backing);
    const layout = writeSuperblock(mem, spec, Date.now());
    const allocator = new PageAllocator(mem, layout);
    const balloonList = new BalloonList(mem, layout);
    allocator.format();
    balloonList.format();
    // Pages the host did not populate at boot count as ballooned from the start.
    for (let pfn = layout.reservedEnd; pfn < layout.maxPages; pfn++) if (!mem.isPopulated(pfn)) balloonList.push(pfn);
    const vcpu = Vcpu.reset(SUPERBLOCK_PFN, spec.seed);
    const gate = new RunGate();
    const os = new GuestOs(platform, mem, layout, allocator, vcpu, gate, spec);
    this.vcpu = vcpu;
    const { workload, rootPfn } = await workloadProgram(spec.kind).format(os);
    setWorkloadRoot(mem, rootPfn);
    platform.log(
      `booted ${spec.kind} (seed ${spec.seed}): ${layout.maxPages} pages, ${allocator.freePages} free, ` +
        `${balloonList.length} ballooned`,
    );
    await this.start(os, balloonList, workload);
  }

  async resume(platform: GuestPlatform, vcpuContext: Uint8Array): Promise<void> {
    this.assertIdle();
    const vcpu = Vcpu.load(vcpuContext);
    const mem = new PhysMem(platform.backing);
    const found = readSuperblock(mem, vcpu.superblockPfn);
    const allocator = new PageAllocator(mem, found.layout);
    const balloonList = new BalloonList(mem, found.layout);
    const gate = new RunGate();
    const os = new GuestOs(platform, mem, found.layout, allocator, vcpu, gate, found.spec);
    this.vcpu = vcpu;
    const workload = workloadProgram(found.spec.kind).open(os, found.workloadRootPfn);
    os.flushOps();
    const missing = countUnexpectedlyUnpopulated(mem, balloonList, found.layout.reservedEnd);
    platform.log(
      `resumed ${found.spec.kind}: ${os.ops} ops, ${os.errors} errors so far, ${allocator.freePages} free, ` +
        `${balloonList.length} ballooned${missing > 0 ? `, WARNING ${missing} pages the guest owns are not populated` : ''}`,
    );
    await this.start(os, balloonList, workload);
  }

  saveContext(): Uint8Array {
    if (!this.vcpu) throw new Error('saveContext: the guest has not booted');
    return this.vcpu.save();
  }

  async halt(): Promise<void> {
    const g = this.running;
    this.running = null;
    if (g) await g.halt();
  }

  private async start(os: GuestOs, balloonList: BalloonList, workload: Workload): Promise<void> {
    const g = new RunningGuest(os, balloonList, workload, this.options);
    this.running = g;
    await g.start();
  }

  private assertIdle(): void {
    if (this.running) throw new Error('the guest is already running: halt it first');
  }
}

/** Pages the guest believes it owns (not in the balloon list) that the p2m says are absent. */
function countUnexpectedlyUnpopulated(mem: PhysMem, list: BalloonList, reservedEnd: number): number {
  const ballooned = new Set<number>();
  for (let i = 0; i < list.length; i++) ballooned.add(list.at(i));
  let missing = 0;
  for (let pfn = reservedEnd; pfn < mem.maxPages; pfn++) if (!mem.isPopulated(pfn) && !ballooned.has(pfn)) missing++;
  return missing;
}

class RunningGuest implements GuestIntrospection {
  readonly balloon: BalloonDriver;
  private readonly gate: RunGate;
  private readonly reporter: StatusReporter;
  private readonly server: LineServer | null;
  private address: string | null = null;
  private suspending = false;
  private crashed = false;

  constructor(
    readonly os: GuestOs,
    balloonList: BalloonList,
    readonly workload: Workload,
    options: KernelOptions,
  ) {
    this.gate = os.gate;
    this.balloon = new BalloonDriver(os, balloonList, this.gate, {
      ...options.balloon,
      onStep: () => {
        options.balloon?.onStep?.();
        this.reporter.kick();
      },
    });
    this.reporter = new StatusReporter(
      (path, value) => os.platform.xenstore.write(path, value),
      {
        freePages: () => os.allocator.freePages,
        totalPages: () => this.balloon.currentPages,
        workloadReport: () => this.report(),
      },
      (m) => os.platform.log(m),
    );
    const handler = workload.handleRequest?.bind(workload);
    this.server = handler ? new LineServer(os.platform, this.gate, handler, (err) => this.crash(err)) : null;
  }

  get serviceAddress(): string | null {
    return this.address;
  }

  verifyAll(): number {
    return this.workload.verifyAll();
  }

  async start(): Promise<void> {
    const { platform } = this.os;
    const xs = platform.xenstore;
    xs.watch(GUEST_PATHS.memoryTarget, () => {
      if (this.gate.halted) return;
      void xs.read(GUEST_PATHS.memoryTarget).then(
        (v) => {
          if (v !== null && v.trim() !== '' && !this.gate.halted) this.balloon.setTargetKiB(Number(v));
        },
        (err: Error) => platform.log(`reading memory/target failed: ${err.message}`),
      );
    });
    watchShutdown(xs, {
      suspend: () => this.suspend(),
      poweroff: (command) => this.poweroff(command),
      log: (m) => platform.log(m),
      stopped: () => this.gate.halted,
    });
    await xs.write(GUEST_PATHS.featureSuspend, '1');
    this.reporter.start();
    await this.listen();
    this.spawn('workload', runWorkload(this.os, this.workload, this.gate));
    this.spawn('balloon', this.balloon.run());
  }

  async halt(): Promise<void> {
    this.gate.halt();
    this.balloon.wake();
    this.reporter.stop();
    try {
      await this.server?.stop();
    } catch {
      // The host may already have torn the NIC down.
    }
  }

  /** manage.c's do_suspend: stop at a clean point, close the network, suspend, carry on. */
  private async suspend(): Promise<void> {
    if (this.suspending || this.gate.halted) return;
    this.suspending = true;
    const { platform } = this.os;
    try {
      // From here no activity touches guest memory: each is parked at an await.
      this.gate.freeze();
      this.reporter.stop();
      await this.reporter.publish();
      await this.server?.stop();
      this.address = null;
      // Everything is in guest memory or the vCPU registers now.
      let result: 0 | 1;
      try {
        result = await platform.suspend();
      } catch (err) {
        platform.log(`suspend hypercall failed, continuing: ${(err as Error).message}`);
        result = 1;
      }
      if (this.gate.halted) return;
      platform.log(result === 1 ? 'suspend cancelled: continuing in place' : 'resumed after suspend');
      if (result === 0) await platform.xenstore.write(GUEST_PATHS.featureSuspend, '1');
      this.gate.thaw();
      this.reporter.start();
      await this.listen();
    } catch (err) {
      this.crash(err);
    } finally {
      this.suspending = false;
    }
  }

  private poweroff(command: string): void {
    this.os.platform.log(`control/shutdown: ${command}`);
    void this.halt().then(() => this.os.platform.shutdown('poweroff'));
  }

  private async listen(): Promise<void> {
    if (!this.server || this.gate.halted) return;
    this.address = await this.server.start();
    await this.os.platform.xenstore.write(GUEST_PATHS.serviceAddress, this.address);
  }

  private report(): Record<string, unknown> {
    return {
      kind: this.workload.kind,
      ops: this.os.ops,
      errors: this.os.errors,
      ...this.workload.stats(),
      uptime_s: Math.round(this.os.uptimeMs() / 100) / 10,
      balloon_target_pages: this.balloon.target,
      balloon_pages: this.balloon.currentPages,
    };
  }

  private spawn(name: string, activity: Promise<void>): void {
    activity.catch((err: unknown) => {
      this.os.platform.log(`${name} stopped by an error`);
      this.crash(err);
    });
  }

  /** A guest fault or kernel bug: the domain crashes (the host sees shutdown reason 'crash'). */
  private crash(err: unknown): void {
    if (this.crashed) return;
    this.crashed = true;
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.os.platform.log(`kernel panic: ${message}`);
    void this.halt().finally(() => this.os.platform.shutdown('crash', message));
  }
}
