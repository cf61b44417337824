// The contract between the kernel and a workload program.
//
// A workload keeps all of its state in guest memory (its header page, reachable from the
// superblock) plus the workload registers of the vCPU. Its step() is synchronous, so guest memory
// is consistent between any two steps: that is where the kernel pauses, suspends or checkpoints.

import type { WorkloadSpec } from '@ferry/hypervisor';
import type { GuestOs } from '../guest-os';

export type WorkloadKind = WorkloadSpec['kind'];

export interface Workload {
  readonly kind: WorkloadKind;
  /** Operations per second the kernel paces step() at; 0 = as fast as it can. */
  readonly rate: number;
  /** One operation (a request, a transaction, a page write, ...). Synchronous. */
  step(): void;
  /** Extra figures for data/workload (ops and errors are added by the kernel). */
  stats(): Record<string, number | string>;
  /** Checks all of its data against the stamps; counts and returns the failures. */
  verifyAll(): number;
  /** A request line from the network, answered synchronously (kv only). */
  handleRequest?(line: string): string;
}

export interface WorkloadProgram {
  /** First boot: lay the workload out in free memory; returns it and its header pfn. */
  format(os: GuestOs): Promise<{ workload: Workload; rootPfn: number }>;
  /** After a migration (or in place): find the workload again from its header page. */
  open(os: GuestOs, rootPfn: number): Workload;
}

/** A spec value, or the workload's default when it is absent or 0. */
export function orDefault(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}

/** Header word where every workload keeps its magic. */
export const HEADER_MAGIC_WORD = 0;
