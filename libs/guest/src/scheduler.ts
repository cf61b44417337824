// Runs the workload: step() at the workload's rate, paced by a token bucket on the wall clock,
// with the vCPU's pause point before every step and a trip through the event loop after every
// batch (xenstore events and pause requests arrive as messages). Ops are counted in a vCPU
// register and added to guest memory once per batch: memory + registers are consistent at every
// pause point, including a host that parks the vCPU synchronously inside checkpoint().

import type { GuestOs } from './guest-os';
import { yieldToEventLoop, type RunGate } from './run-gate';
import { TokenBucket } from './token-bucket';
import type { Workload } from './workloads/workload';

/** Steps between event-loop turns when unthrottled (a memtest step is ~0.1-0.3 µs). */
export const UNTHROTTLED_BATCH = 2048;
/** Most steps per batch when paced. */
export const PACED_MAX_BATCH = 1024;
/** Burst of the bucket: this much time's worth of operations. */
const BURST_MS = 20;

export async function runWorkload(os: GuestOs, workload: Workload, gate: RunGate): Promise<void> {
  const { platform } = os;
  const bucket = workload.rate > 0 ? new TokenBucket(workload.rate, (workload.rate * BURST_MS) / 1000, performance.now()) : null;
  while (!gate.halted) {
    const thawed = gate.whenThawed();
    if (thawed) {
      await thawed;
      continue;
    }
    let n = UNTHROTTLED_BATCH;
    if (bucket) {
      n = bucket.take(performance.now(), PACED_MAX_BATCH);
      if (n === 0) {
        await gate.sleep(Math.max(1, Math.ceil(bucket.msUntilNext(performance.now()))));
        continue;
      }
    }
    for (let i = 0; i < n; i++) {
      const p = platform.checkpoint();
      if (p) {
        await p;
        if (!gate.running) break;
      }
      workload.step();
      os.countOp();
    }
    os.flushOps();
    await yieldToEventLoop();
  }
}
