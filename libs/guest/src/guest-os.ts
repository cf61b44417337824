// What the kernel offers its workload: guest memory, the page allocator, the vCPU registers and
// PRNG, the clock (phases are counted from the boot time stored in the superblock) and the op and
// error counters (in the kernel state page).

import type { WorkloadSpec } from '@ferry/hypervisor';
import { KERNEL_STATE_PFN, KS, SB, SUPERBLOCK_PFN, type KernelLayout } from './layout';
import type { PageAllocator } from './page-allocator';
import type { PhysMem } from './phys-mem';
import type { GuestPlatform } from './platform';
import type { Prng } from './prng';
import { yieldToEventLoop, type RunGate } from './run-gate';
import { REG, type Vcpu } from './vcpu';

/** Corruption reports printed to the console before the guest stops logging them (the count goes on). */
const LOGGED_ERRORS = 20;

export class GuestOs {
  private loggedErrors = 0;

  constructor(
    readonly platform: GuestPlatform,
    readonly mem: PhysMem,
    readonly layout: KernelLayout,
    readonly allocator: PageAllocator,
    readonly vcpu: Vcpu,
    readonly gate: RunGate,
    readonly spec: WorkloadSpec,
  ) {}

  get prng(): Prng {
    return this.vcpu.prng;
  }

  get maxPages(): number {
    return this.layout.maxPages;
  }

  get seed(): number {
    return this.mem.readU32(SUPERBLOCK_PFN, SB.SEED);
  }

  get bootTimeMs(): number {
    return this.mem.read64(SUPERBLOCK_PFN, SB.BOOT_TIME_MS);
  }

  /** Wall-clock milliseconds since first boot; it keeps counting across migrations. */
  uptimeMs(): number {
    return Date.now() - this.bootTimeMs;
  }

  /** Index of the current phase (0 when phases are off). */
  phase(phaseSeconds: number): number {
    if (!(phaseSeconds > 0)) return 0;
    return Math.max(0, Math.floor(this.uptimeMs() / (phaseSeconds * 1000)));
  }

  /** Operations done: the counter in guest memory plus those counted in a register since. */
  get ops(): number {
    return this.mem.read64(KERNEL_STATE_PFN, KS.OPS) + this.vcpu.regs[REG.PENDING_OPS];
  }

  get errors(): number {
    return this.mem.read64(KERNEL_STATE_PFN, KS.ERRORS);
  }

  /**
   * One operation done. Counted in a vCPU register (cheap, and saved with the context wherever
   * the guest stops) and moved to guest memory by flushOps().
   */
  countOp(): void {
    this.vcpu.regs[REG.PENDING_OPS]++;
  }

  flushOps(): void {
    const pending = this.vcpu.regs[REG.PENDING_OPS];
    if (pending === 0) return;
    this.mem.add64(KERNEL_STATE_PFN, KS.OPS, pending);
    this.vcpu.regs[REG.PENDING_OPS] = 0;
  }

  /** A self-check failed: data was corrupt, stale or lost. */
  countError(what: string): void {
    this.mem.add64(KERNEL_STATE_PFN, KS.ERRORS, 1);
    if (this.loggedErrors < LOGGED_ERRORS) {
      this.loggedErrors++;
      this.platform.log(`self-check failed: ${what}${this.loggedErrors === LOGGED_ERRORS ? ' (further failures are only counted)' : ''}`);
    }
  }

  /**
   * A pause point inside long work (boot-time fills, scans): waits while the domain is paused and
   * lets xenstore events and other messages through.
   */
  async pausePoint(): Promise<void> {
    const p = this.platform.checkpoint();
    if (p) await p;
    await yieldToEventLoop();
  }

  /**
   * Pages the workload may use: (1 - freeFraction) of the guest, less what the kernel reserved,
   * never more than is free now (less a little slack the allocator keeps for churn).
   */
  workloadBudgetPages(): number {
    const f = Math.min(1, Math.max(0, this.spec.freeFraction));
    const used = Math.round((1 - f) * this.maxPages) - this.layout.reservedEnd;
    const slack = Math.min(64, Math.ceil(this.maxPages / 256));
    return Math.max(0, Math.min(used, this.allocator.freePages - slack));
  }
}
