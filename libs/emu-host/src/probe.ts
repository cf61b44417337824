// The probe: how one guest uses memory. It starts an emulated host in a temp folder, boots one
// domain running the workload, turns log-dirty on and CLEANs once a second (dirty pages per
// second, and the union of every page dirtied), reads populated pages and the guest's reported
// free memory, after two seconds sets the balloon target to used memory + 10% and waits for the
// guest to get there, and reports the workload's own counters. Everything is removed afterwards.
// (`ferry emu probe` prints its result.)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PAGE_SIZE,
  bitmapCount,
  connectEmulatedDriver,
  kibToPages,
  pagesToKiB,
  xsPaths,
  type EmulatedDriver,
  type WorkloadSpec,
} from '@ferry/hypervisor';
import { spawnEmuHost, type EmuHostProcess } from './spawn';

export interface ProbeOptions {
  /** A full workload spec, or just its kind (then seed and freeFraction below apply). */
  workload: WorkloadSpec | WorkloadSpec['kind'];
  memoryBytes: number;
  /** Used when `workload` is a kind. Default 0.5. */
  freeFraction?: number;
  /** Used when `workload` is a kind. Default 1. */
  seed?: number;
  /** Seconds of measurement (one CLEAN per second). Default 5. */
  seconds?: number;
  /** Seconds after the start of measurement at which the balloon target is set. Default 2. */
  balloonAfterSeconds?: number;
  /** Target = used pages × (1 + headroom). Default 0.1. */
  balloonHeadroom?: number;
  /** How long to wait for the guest to reach the target. Default 30. */
  balloonTimeoutSeconds?: number;
  /** How long the guest may take to boot and report its memory. Default 120. */
  bootTimeoutSeconds?: number;
  /** Guest kernel module (default @ferry/guest). */
  kernelModule?: string;
  /** Name of the probe's emulated host (its shared memory objects start with /ferry-<name>-). Default "probe". */
  hostName?: string;
  /** Folder in which the probe makes (and removes) its temp folder. Default the OS temp folder. */
  workDir?: string;
}

export interface ProbeResult {
  spec: WorkloadSpec;
  memory_bytes: number;
  max_pages: number;
  seconds: number;
  /** Populated pages when the balloon target was set (what an uncompacted round 0 would send). */
  populated_pages: number;
  /** Free pages as the guest reported them then (data/meminfo_free). */
  free_pages: number;
  /** Dirty pages per second, one entry per CLEAN (dirty count over the time since the last CLEAN), rounded. */
  dirty_pages_per_s: number[];
  /** The mean of dirty_pages_per_s. */
  dirty_pages_per_s_mean: number;
  /** Pages dirtied at least once during the whole probe. */
  unique_dirty_pages: number;
  /** Sum of the CLEANs' fault counts (first writes to a clean page). */
  fault_count: number;
  balloon: {
    target_pages: number;
    reached: boolean;
    /** From setting the target to reaching it (or giving up). */
    seconds: number;
    /** Populated pages at the end of the wait. */
    final_pages: number;
  };
  /** The guest's own counters from data/workload ({kind, ops, errors, ...}). */
  workload: { ops: number; errors: number } & Record<string, unknown>;
}

export async function runProbe(opts: ProbeOptions): Promise<ProbeResult> {
  const spec: WorkloadSpec =
    typeof opts.workload === 'string'
      ? { kind: opts.workload, seed: opts.seed ?? 1, freeFraction: opts.freeFraction ?? 0.5 }
      : opts.workload;
  const seconds = opts.seconds ?? 5;
  const balloonAfter = opts.balloonAfterSeconds ?? 2;
  if (!Number.isInteger(seconds) || seconds < 1) throw new RangeError(`seconds must be a positive integer, got ${seconds}`);
  const maxPages = Math.ceil(opts.memoryBytes / PAGE_SIZE);
  if (!(maxPages >= 1)) throw new RangeError(`memoryBytes must be at least one page, got ${opts.memoryBytes}`);

  const dir = mkdtempSync(join(opts.workDir ?? tmpdir(), 'ferry-probe-'));
  let host: EmuHostProcess | null = null;
  let driver: EmulatedDriver | null = null;
  try {
    host = await spawnEmuHost({
      name: opts.hostName ?? 'probe',
      dir,
      capacityBytes: maxPages * PAGE_SIZE,
      kernelModule: opts.kernelModule,
    });
    driver = await connectEmulatedDriver(host.socketPath);
    return await measure(driver, host, spec, maxPages, seconds, balloonAfter, opts);
  } finally {
    await driver?.close().catch(() => {});
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(
  driver: EmulatedDriver,
  host: EmuHostProcess,
  spec: WorkloadSpec,
  maxPages: number,
  seconds: number,
  balloonAfter: number,
  opts: ProbeOptions,
): Promise<ProbeResult> {
  const domid = await driver.createDomain({ name: 'probe', maxPages, workload: spec });
  const guestFreePages = async () => {
    const kib = await driver.xenstoreRead(xsPaths.meminfoFree(domid));
    return kib === null ? null : kibToPages(Number(kib));
  };
  await waitFor(
    async () => {
      const info = await driver.domainInfo(domid);
      if (info.state === 'shutdown') throw new Error(`the guest shut down (${info.shutdownReason}) while booting\n${host.logTail()}`);
      return (await guestFreePages()) !== null;
    },
    (opts.bootTimeoutSeconds ?? 120) * 1000,
    'the guest to boot and report data/meminfo_free',
  );

  await driver.logDirtyEnable(domid);
  const union = new Uint8Array(Math.ceil(maxPages / 8));
  const rates: number[] = [];
  let faults = 0;
  let populated = 0;
  let free = 0;
  let balloon: Promise<ProbeResult['balloon']> | null = null;
  const start = performance.now();
  let last = start;
  for (let tick = 1; tick <= seconds; tick++) {
    await sleepUntil(start + tick * 1000);
    const { bitmap, stats } = await driver.logDirtyClean(domid);
    const now = performance.now();
    rates.push(stats.dirtyCount / ((now - last) / 1000));
    last = now;
    faults += stats.faultCount;
    for (let i = 0; i < union.length; i++) union[i] |= bitmap[i];
    if (tick === balloonAfter) {
      populated = (await driver.domainInfo(domid)).nrPages;
      free = (await guestFreePages()) ?? 0;
      balloon = inflate(driver, domid, populated, free, opts);
    }
  }
  if (!balloon) {
    // A probe shorter than the balloon delay still measures compaction, after the last CLEAN.
    populated = (await driver.domainInfo(domid)).nrPages;
    free = (await guestFreePages()) ?? 0;
    balloon = inflate(driver, domid, populated, free, opts);
  }
  const balloonResult = await balloon;
  await driver.logDirtyDisable(domid);
  const workloadText = await driver.xenstoreRead(xsPaths.workloadStats(domid));
  const workload = (workloadText ? JSON.parse(workloadText) : { ops: 0, errors: 0 }) as ProbeResult['workload'];
  await driver.destroy(domid);

  const perSecond = rates.map((r) => Math.round(r));
  return {
    spec,
    memory_bytes: maxPages * PAGE_SIZE,
    max_pages: maxPages,
    seconds,
    populated_pages: populated,
    free_pages: free,
    dirty_pages_per_s: perSecond,
    dirty_pages_per_s_mean: Math.round(perSecond.reduce((a, b) => a + b, 0) / perSecond.length),
    unique_dirty_pages: bitmapCount(union),
    fault_count: faults,
    balloon: balloonResult,
    workload,
  };
}

/** Sets memory/target to used + headroom and waits until the domain's populated pages reach it. */
async function inflate(
  driver: EmulatedDriver,
  domid: number,
  populated: number,
  guestFree: number,
  opts: ProbeOptions,
): Promise<ProbeResult['balloon']> {
  const used = Math.max(0, populated - guestFree);
  const targetPages = Math.min(populated, Math.ceil(used * (1 + (opts.balloonHeadroom ?? 0.1))));
  const started = performance.now();
  await driver.xenstoreWrite(xsPaths.memoryTarget(domid), String(pagesToKiB(targetPages)));
  const timeoutMs = (opts.balloonTimeoutSeconds ?? 30) * 1000;
  let finalPages = populated;
  let reached = false;
  try {
    await waitFor(
      async () => {
        finalPages = (await driver.domainInfo(domid)).nrPages;
        return finalPages <= targetPages;
      },
      timeoutMs,
      'the balloon target',
    );
    reached = true;
  } catch (err) {
    if (!(err instanceof WaitTimeout)) throw err;
  }
  return { target_pages: targetPages, reached, seconds: round3((performance.now() - started) / 1000), final_pages: finalPages };
}

class WaitTimeout extends Error {}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new WaitTimeout(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function sleepUntil(when: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, when - performance.now())));
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
