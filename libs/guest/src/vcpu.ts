// The vCPU context: the guest's registers, the only state that is not in guest memory. It holds
// the superblock's pfn (as CR3 would point at page tables), the workload's PRNG state and a few
// workload registers (cursors of hot loops). saveContext() serialises it; resume() loads it.

import { Prng, PRNG_STATE_WORDS } from './prng';

/** "FCTX" little-endian. */
export const CONTEXT_MAGIC = 0x58544346;
export const CONTEXT_VERSION = 1;
export const CONTEXT_WORDS = 32;
export const CONTEXT_BYTES = CONTEXT_WORDS * 4;

export const REG = {
  MAGIC: 0,
  VERSION: 1,
  SUPERBLOCK_PFN: 2,
  /** Operations done since the op counter in guest memory was last brought up to date. */
  PENDING_OPS: 3,
  PRNG: 4,
  /** Workload registers: WORKLOAD .. WORKLOAD + WORKLOAD_REGS - 1. */
  WORKLOAD: 8,
} as const;
export const WORKLOAD_REGS = CONTEXT_WORDS - REG.WORKLOAD;

export class Vcpu {
  readonly regs = new Uint32Array(CONTEXT_WORDS);
  readonly prng: Prng;

  private constructor() {
    this.prng = new Prng(this.regs, REG.PRNG);
  }

  static reset(superblockPfn: number, seed: number): Vcpu {
    const cpu = new Vcpu();
    cpu.regs[REG.MAGIC] = CONTEXT_MAGIC;
    cpu.regs[REG.VERSION] = CONTEXT_VERSION;
    cpu.regs[REG.SUPERBLOCK_PFN] = superblockPfn;
    Prng.seed(cpu.regs, REG.PRNG, seed);
    return cpu;
  }

  static load(context: Uint8Array): Vcpu {
    if (context.byteLength !== CONTEXT_BYTES) {
      throw new Error(`vCPU context is ${context.byteLength} bytes, expected ${CONTEXT_BYTES}`);
    }
    const cpu = new Vcpu();
    new Uint8Array(cpu.regs.buffer).set(context);
    if (cpu.regs[REG.MAGIC] !== CONTEXT_MAGIC) throw new Error('vCPU context has a bad magic: not a Ferry guest context');
    if (cpu.regs[REG.VERSION] !== CONTEXT_VERSION) {
      throw new Error(`vCPU context version ${cpu.regs[REG.VERSION]}, this kernel understands ${CONTEXT_VERSION}`);
    }
    if (PRNG_STATE_WORDS !== 4) throw new Error('unreachable');
    return cpu;
  }

  save(): Uint8Array {
    return new Uint8Array(this.regs.buffer.slice(0));
  }

  get superblockPfn(): number {
    return this.regs[REG.SUPERBLOCK_PFN];
  }

  /** Workload register i (0 .. WORKLOAD_REGS-1). */
  reg(i: number): number {
    return this.regs[REG.WORKLOAD + i];
  }

  setReg(i: number, value: number): void {
    this.regs[REG.WORKLOAD + i] = value;
  }
}
