// Several seeds of one workload and variant, summed up: medians of the figures and of the ratios
// against xen-4.17 in the same seed (paired, so a seed that was slow for every variant does not
// move the ratio). Downtime in the lab has a fixed cost of a few process hops whose jitter is as
// large as the differences between policies; one seed says little, the median of several more.

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
}

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
  }));
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
