// The contract between the emulated guest and the emulated hypervisor.
//
// The guest is a real program whose whole state lives in guest memory plus a small vCPU context.
// It runs in a worker thread of the emulated Xen host process. The host gives it:
//  - a MemoryBacking: guest RAM plus the p2m and log-dirty bitmaps, all shared memory that dom0
//    processes (memory-tracker, page-streamer) also map;
//  - a GuestPlatform: the hypercalls a PV guest makes (balloon reservation ops, xenstore, the
//    suspend/shutdown hypercall, a pause point) and a NIC to serve its network service on.
// The guest gives back a GuestKernel: boot from scratch, or resume from memory + vCPU context.

import type { Socket } from 'node:net';
import type { WorkloadSpec } from '@ferry/hypervisor';

export const PAGE_SIZE = 4096;
export const WORDS_PER_PAGE = PAGE_SIZE / 4;
/** RAM is mapped in windows of 2^18 pages (1 GiB): a single JS buffer cannot exceed 4 GiB. */
export const WINDOW_PAGES = 1 << 18;

/** Indices into MemoryBacking.control. */
export const CONTROL = {
  /** 1 while log-dirty is enabled. */
  LOG_DIRTY: 0,
  /** Writes that found their page clean since the last CLEAN (Xen's fault_count analogue). */
  FAULT_COUNT: 1,
  /** Number of words in the control array. */
  SIZE: 16,
} as const;

export interface MemoryBacking {
  maxPages: number;
  /** ceil(maxPages / WINDOW_PAGES) windows; window w holds pfns [w*WINDOW_PAGES, ...). */
  ram: ArrayBuffer[];
  /** p2m bitset: bit (pfn & 31) of word (pfn >> 5) set = populated. Read with Atomics. */
  p2m: Int32Array;
  /** log-dirty bitset, same layout. Guests set bits with Atomics.or; CLEAN takes words with Atomics.exchange. */
  dirty: Int32Array;
  /** Control words, see CONTROL. */
  control: Int32Array;
}

export interface GuestXenstore {
  /** Paths are relative to the domain's home, e.g. "memory/target". */
  read(path: string): Promise<string | null>;
  write(path: string, value: string): Promise<void>;
  /** Fires once at registration and on every later write under the path. */
  watch(path: string, onChange: (path: string) => void): void;
}

export interface GuestPlatform {
  readonly domid: number;
  readonly backing: MemoryBacking;
  readonly xenstore: GuestXenstore;
  /** XENMEM_decrease_reservation: the pfns become unpopulated (their contents are gone). */
  decreaseReservation(pfns: readonly number[]): void;
  /** XENMEM_populate_physmap: the pfns become populated, zero-filled. Throws when the host has no memory. */
  populatePhysmap(pfns: readonly number[]): void;
  /**
   * The vCPU's pause point. The guest awaits it between operations (and before touching memory in
   * a network handler); it resolves at once while the domain runs and stays pending while it is paused.
   */
  checkpoint(): Promise<void> | undefined;
  /**
   * SCHEDOP_shutdown(SHUTDOWN_suspend), after the guest has saved what it needs. Resolves when the
   * vCPU runs again: 0 = resumed in a new domain (after a migration), 1 = cancelled (same domain).
   */
  suspend(): Promise<0 | 1>;
  /** SCHEDOP_shutdown with another reason; the guest stops. */
  shutdown(reason: 'poweroff' | 'crash', message?: string): void;
  /** The guest's NIC: listen for TCP connections on this host; resolves to "host:port". */
  listen(onConnection: (socket: Socket) => void): Promise<string>;
  /** Stop listening (before suspend). */
  unlisten(): Promise<void>;
  /** Guest console. */
  log(message: string): void;
}

export interface GuestKernel {
  /** First boot: lay out memory for the workload and start running. */
  boot(platform: GuestPlatform, workload: WorkloadSpec): Promise<void>;
  /** Continue a guest from its memory and vCPU context (after a restore on another host). */
  resume(platform: GuestPlatform, vcpuContext: Uint8Array): Promise<void>;
  /** The vCPU registers; called while the guest is parked at a checkpoint or suspended. */
  saveContext(): Uint8Array;
  /** Stop everything (domain destroyed). */
  halt(): Promise<void>;
}
