// Recording a dirty trace: one guest on a private emulated host, log-dirty on, one CLEAN every
// `intervalMs` for `seconds`. The bitmaps are what the simulator (`ferry sim --trace`) replays.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE, connectEmulatedDriver, kibToPages, xsPaths, type EmulatedDriver, type WorkloadSpec } from '@ferry/hypervisor';
import { spawnEmuHost, type EmuHostProcess } from './spawn';

export interface TraceRecordOptions {
  workload: WorkloadSpec;
  memoryBytes: number;
  seconds: number;
  intervalMs: number;
  /** Seconds the guest runs before recording starts. */
  warmupSeconds?: number;
}

export interface RecordedTrace {
  pages: number;
  /** The p2m when recording started. */
  p2m: Uint8Array;
  /** Free pages as the guest reported them when recording started. */
  freePages: number;
  intervalMs: number;
  bitmaps: Uint8Array[];
}

export async function recordTrace(opts: TraceRecordOptions): Promise<RecordedTrace> {
  const maxPages = Math.ceil(opts.memoryBytes / PAGE_SIZE);
  if (!(opts.intervalMs >= 10)) throw new RangeError(`intervalMs must be at least 10, got ${opts.intervalMs}`);
  const dir = mkdtempSync(join(tmpdir(), 'ferry-trace-'));
  let host: EmuHostProcess | null = null;
  let driver: EmulatedDriver | null = null;
  try {
    host = await spawnEmuHost({ name: 'trace', dir, capacityBytes: maxPages * PAGE_SIZE });
    driver = await connectEmulatedDriver(host.socketPath);
    const domid = await driver.createDomain({ name: 'trace', maxPages, workload: opts.workload });
    const deadline = Date.now() + 120_000;
    let freeKib: string | null = null;
    while ((freeKib = await driver.xenstoreRead(xsPaths.meminfoFree(domid))) === null) {
      if (Date.now() > deadline) throw new Error('the guest did not boot within 120 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, (opts.warmupSeconds ?? 2) * 1000));
    const p2m = await driver.p2m(domid);
    const freePages = kibToPages(Number((await driver.xenstoreRead(xsPaths.meminfoFree(domid))) ?? freeKib));
    await driver.logDirtyEnable(domid);
    const bitmaps: Uint8Array[] = [];
    const start = performance.now();
    const frames = Math.round((opts.seconds * 1000) / opts.intervalMs);
    for (let k = 1; k <= frames; k++) {
      const wait = start + k * opts.intervalMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      bitmaps.push((await driver.logDirtyClean(domid)).bitmap);
    }
    await driver.logDirtyDisable(domid);
    await driver.destroy(domid);
    return { pages: maxPages, p2m, freePages, intervalMs: opts.intervalMs, bitmaps };
  } finally {
    await driver?.close().catch(() => {});
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
