// A pre-migration probe of how fast a domain dirties memory: log-dirty on, one CLEAN per interval
// for the requested time, log-dirty off. Each CLEAN's dirty count over the time since the previous
// one is a sample; the OR of all bitmaps is the writable working set.

import { bitmapCount, type HypervisorDriver } from '@ferry/hypervisor';
import { enableLogDirty } from './log-dirty';

export interface DirtyRateProbeOptions {
  durationMs: number;
  intervalMs: number;
}

export interface DirtyRateProbeResult {
  durationMs: number;
  samples: number;
  meanPagesPerSecond: number;
  peakPagesPerSecond: number;
  distinctPages: number;
  populatedPages: number;
}

export async function probeDirtyRate(
  driver: HypervisorDriver,
  domid: number,
  opts: DirtyRateProbeOptions,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<DirtyRateProbeResult> {
  const info = await driver.domainInfo(domid);
  await enableLogDirty(driver, domid);
  try {
    const seen = new Uint8Array(Math.ceil(info.maxPages / 8));
    const started = performance.now();
    let previous = started;
    let samples = 0;
    let rateSum = 0;
    let peak = 0;
    for (;;) {
      const remaining = opts.durationMs - (performance.now() - started);
      if (remaining <= 0) break;
      await sleep(Math.min(opts.intervalMs, remaining));
      const { bitmap, stats } = await driver.logDirtyClean(domid);
      const now = performance.now();
      const rate = (stats.dirtyCount * 1000) / Math.max(now - previous, 1);
      previous = now;
      samples++;
      rateSum += rate;
      if (rate > peak) peak = rate;
      for (let i = 0; i < seen.length; i++) seen[i] |= bitmap[i] ?? 0;
    }
    const populatedPages = (await driver.domainInfo(domid)).nrPages;
    return {
      durationMs: Math.round(previous - started),
      samples,
      meanPagesPerSecond: samples > 0 ? rateSum / samples : 0,
      peakPagesPerSecond: peak,
      distinctPages: bitmapCount(seen),
      populatedPages,
    };
  } finally {
    await driver.logDirtyDisable(domid).catch(() => undefined);
  }
}
