// Several seeds of one workload and variant, summed up: medians of the figures and of the ratios
// against xen-4.17 in the same seed (paired, so a seed that was slow for every variant does not
// move the ratio). Downtime in the lab has a fixed cost of a few process hops whose jitter is as
// large as the differences between policies; one seed says little, the median of several more,
// and the interval around that median says how much more (a bootstrap over the seeds).

import { Xorshift32 } from '@ferry/sim';
import type { BenchRun } from './suite';

export interface SeedMedians {
  workload: string;
  variant: string;
  /** Seeds whose migration succeeded (the medians are over these). */
  seeds: number;
  bytes_sent: number;
  total_ms: number;
  downtime_ms: number;
  /** Median over seeds of the ratio to xen-4.17 of the same seed; absent without a baseline. */
  ratio_bytes?: number;
  ratio_total?: number;
  ratio_downtime?: number;
  /**
   * A 95% interval for ratio_downtime: the 2.5th and 97.5th percentiles of the median over seeds
   * drawn again with replacement (a percentile bootstrap, deterministic). Present from three seeds
   * with a ratio. Downtime only: bytes and time repeat to the hundredth between seeds.
   */
  ratio_downtime_interval?: [number, number];
}

/** Resamples drawn for an interval; enough that the percentiles move by less than 0.01. */
const BOOTSTRAP_RESAMPLES = 4000;
const INTERVAL_MIN_SEEDS = 3;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One row per workload and variant, in the order the runs first name them. */
export function seedMedians(runs: readonly BenchRun[]): SeedMedians[] {
  const groups = new Map<string, BenchRun[]>();
  for (const r of runs) {
    if (r.outcome !== 'succeeded') continue;
    const key = `${r.workload}\u0000${r.variant}`;
    const group = groups.get(key) ?? [];
    group.push(r);
    groups.set(key, group);
  }
  const ratio = (group: BenchRun[], pick: (r: BenchRun) => number | undefined) => {
    const values = group.map(pick).filter((v): v is number => v !== undefined);
    return values.length > 0 ? round3(median(values)) : undefined;
  };
  return [...groups.values()].map((group) => ({
    workload: group[0].workload,
    variant: group[0].variant,
    seeds: group.length,
    bytes_sent: median(group.map((r) => r.bytes_sent)),
    total_ms: median(group.map((r) => r.total_ms)),
    downtime_ms: median(group.map((r) => r.downtime_ms)),
    ratio_bytes: ratio(group, (r) => r.ratio_bytes),
    ratio_total: ratio(group, (r) => r.ratio_total),
    ratio_downtime: ratio(group, (r) => r.ratio_downtime),
    ratio_downtime_interval: medianInterval(group.map((r) => r.ratio_downtime).filter((v): v is number => v !== undefined)),
  }));
}

/**
 * The 95% percentile-bootstrap interval of the median of `values`, or undefined for fewer than
 * three values. The same values always give the same interval (a fixed pseudo-random sequence).
 */
export function medianInterval(values: readonly number[]): [number, number] | undefined {
  if (values.length < INTERVAL_MIN_SEEDS) return undefined;
  const random = new Xorshift32(0x5eed);
  const medians: number[] = [];
  const sample = new Array<number>(values.length);
  for (let i = 0; i < BOOTSTRAP_RESAMPLES; i++) {
    for (let j = 0; j < values.length; j++) sample[j] = values[Math.floor(random.next() * values.length)];
    medians.push(median(sample));
  }
  medians.sort((a, b) => a - b);
  const at = (q: number) => medians[Math.min(medians.length - 1, Math.floor(q * medians.length))];
  return [round3(at(0.025)), round3(at(0.975))];
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
