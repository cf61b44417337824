// How the host's main thread stops and restarts a guest's vCPU (its worker thread).
//
// A paused vCPU executes nothing, so a parked worker blocks in Atomics.wait: no guest code, timer
// or network handler runs, and guest memory cannot change. It parks at a clean point: at
// platform.checkpoint() when a pause was requested, in its message handler when the host nudges an
// idle guest, in platform.suspend(), and in platform.shutdown(). While parked it serves commands
// written to the COMMAND word (save the vCPU context, run again, resume after a cancelled suspend,
// exit when the domain is destroyed).
//
// Words of the Int32Array over a SharedArrayBuffer that both threads hold:

export const VCPU = {
  /** 1 while the host wants the vCPU paused. */
  PAUSE_REQUESTED: 0,
  /** A ParkCode while the worker is parked, 0 while it runs. */
  PARKED: 1,
  /** A VcpuCommand for the parked worker; it resets the word to NONE when it takes the command. */
  COMMAND: 2,
  WORDS: 4,
} as const;

export const ParkCode = { RUNNING: 0, PAUSED: 1, SUSPENDED: 2, STOPPED: 3 } as const;

export const VcpuCommand = {
  NONE: 0,
  /** Leave a pause (ignored unless parked for a pause and the pause request is withdrawn). */
  RUN: 1,
  /** Call kernel.saveContext() and post the bytes. */
  SAVE_CONTEXT: 2,
  /** Return 1 from platform.suspend(): the suspend was cancelled (xc_domain_resume fast). */
  RESUME_SUSPENDED: 3,
  /**
   * The domain is destroyed: close guest memory and end the thread. Terminating a parked worker
   * instead would leave its descriptors of the memory objects open, and the host's memory with them.
   */
  EXIT: 4,
} as const;
export type VcpuCommand = (typeof VcpuCommand)[keyof typeof VcpuCommand];

export function createVcpuSync(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(VCPU.WORDS * 4));
}
