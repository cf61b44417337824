// Write models of the emulated workloads for the simulator, with their knobs. The rates follow
// ../shared/reference/literature.md §5 scaled to a small guest: a Zipf hot set of a few percent
// of memory plus a uniform cold background (the two-tier fit of the memcached curve, §5b),
// sequential appends for logs and WALs, and a writer faster than a 1 Gbit/s link for memtest.

import type { WriteModel } from './trace';

export type SimWorkload = 'kv' | 'web' | 'db' | 'compile' | 'memtest' | 'idle';

export interface SimWorkloadKnobs {
  memoryBytes: number;
  freeFraction: number;
  /** Overrides of the preset (0 / undefined = preset value). */
  hotSetFraction?: number;
  zipfS?: number;
  /** Scales every write rate of the preset. */
  writeRateScale?: number;
  seed: number;
}

const PRESETS: Record<SimWorkload, Omit<WriteModel, 'pages' | 'freeFraction' | 'seed'>> = {
  kv: { hotFraction: 0.05, zipfS: 0.99, hotWritesPerS: 20_000, coldWritesPerS: 2_000, appendPagesPerS: 200 },
  web: { hotFraction: 0.01, zipfS: 1.0, hotWritesPerS: 3_000, coldWritesPerS: 200, appendPagesPerS: 500 },
  db: { hotFraction: 0.1, zipfS: 0.9, hotWritesPerS: 15_000, coldWritesPerS: 3_000, appendPagesPerS: 1_000 },
  compile: { hotFraction: 0.3, zipfS: 0.5, hotWritesPerS: 10_000, coldWritesPerS: 5_000, appendPagesPerS: 2_000 },
  // > 32k pages/s is faster than a 1 Gbit/s link can carry (4 KiB pages).
  memtest: { hotFraction: 1, zipfS: 0, hotWritesPerS: 60_000, coldWritesPerS: 0, appendPagesPerS: 0 },
  idle: { hotFraction: 0.001, zipfS: 1.0, hotWritesPerS: 20, coldWritesPerS: 5, appendPagesPerS: 0 },
};

export const SIM_WORKLOADS = Object.keys(PRESETS) as SimWorkload[];

export function workloadModel(kind: SimWorkload, k: SimWorkloadKnobs): WriteModel {
  const p = PRESETS[kind];
  const scale = k.writeRateScale ?? 1;
  return {
    pages: Math.floor(k.memoryBytes / 4096),
    freeFraction: k.freeFraction,
    hotFraction: k.hotSetFraction || p.hotFraction,
    zipfS: k.zipfS || p.zipfS,
    hotWritesPerS: p.hotWritesPerS * scale,
    coldWritesPerS: p.coldWritesPerS * scale,
    appendPagesPerS: p.appendPagesPerS * scale,
    seed: k.seed,
  };
}
