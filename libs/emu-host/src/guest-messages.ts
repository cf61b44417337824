// Messages between the host's main thread and a guest worker (over the worker's parent port).

import type { DomainMemoryNames, WorkloadSpec } from '@ferry/hypervisor';

/** Why a worker parked: a pause, SCHEDOP_shutdown(suspend), or another shutdown reason. */
export type ParkReason = 'pause' | 'suspend' | 'poweroff' | 'crash';

export type WorkerToHost =
  | { type: 'online' }
  | { type: 'xs-read'; id: number; path: string }
  | { type: 'xs-write'; id: number; path: string; value: string }
  | { type: 'xs-watch'; watchId: number; path: string }
  | { type: 'parked'; reason: ParkReason; message?: string }
  | { type: 'running' }
  | { type: 'context'; context: Uint8Array }
  | { type: 'context-error'; message: string }
  | { type: 'log'; message: string }
  | { type: 'halted' };

export type HostToWorker =
  | { type: 'xs-reply'; id: number; value?: string | null; error?: string }
  | { type: 'xs-event'; watchId: number; path: string }
  /** Park now if a pause is requested (reaches a guest that is idle between events). */
  | { type: 'pause' }
  /** Stop the guest (kernel.halt()) and exit: the domain is being destroyed. */
  | { type: 'halt' }
  /** A standby vCPU starts: kernel.resume() from this context (the restored domain's first unpause). */
  | { type: 'resume'; context: Uint8Array };

export interface GuestWorkerData {
  domid: number;
  names: DomainMemoryNames;
  /** Module that exports createKernel(): GuestKernel. */
  kernelModule: string;
  /**
   * boot a new guest, resume one from `context`, or (a restored domain) load the kernel and wait in
   * standby for a 'resume' message, so the first unpause does not pay for starting a thread.
   */
  mode: 'boot' | 'resume' | 'standby';
  workload?: WorkloadSpec;
  context?: Uint8Array;
  vcpuSync: SharedArrayBuffer;
  hostMemory: SharedArrayBuffer;
  hostTotalPages: number;
}
