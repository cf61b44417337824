// `ferry sim`: the deterministic simulator over generated or recorded dirty traces, every variant
// side by side with xen-4.17 in the same run, reported as ratios; sweeps over bandwidth and the
// layered parameters.

import { readFileSync, writeFileSync } from 'node:fs';
import { ModelTrace, RecordedTrace, SIM_WORKLOADS, simulate, workloadModel, type DirtyTrace, type SimResult, type SimWorkload } from '@ferry/sim';
import type { PolicyName } from '@ferry/policy';
import { parseBandwidthBits, parseBytes } from '@ferry/runtime';
import { num, parse, UsageError } from '../args';
import type { Command } from './command';
import { parseVariant, VARIANTS_DEFAULT, type Variant } from '@ferry/bench';

function variantOrUsage(text: string): Variant {
  try {
    return parseVariant(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function list(value: string | undefined, fallback: string): string[] {
  return (value ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

function numbers(value: string | undefined, name: string, fallback: number): number[] {
  return list(value, String(fallback)).map((v) => num(v, name, fallback));
}

export interface SimRow {
  workload: string;
  seed: number;
  bandwidth_bits: number;
  variant: string;
  layered: { window: number; threshold: number; demote_after: number; downtime_target_ms: number } | null;
  rounds: number;
  pages_sent: number;
  bytes_sent: number;
  total_ms: number;
  downtime_ms: number;
  balloon_released_pages: number;
  deferred_pages: number;
  stop_reason: string;
  ratio_bytes: number;
  ratio_total: number;
  ratio_downtime: number;
  pages_per_round: number[];
}

export const sim: Command = {
  name: 'sim',
  usage: 'sim [--workloads kv,memtest] [--trace FILE] [--policies ...] [--bandwidth 1gbit,...] [--json FILE]',
  summary: 'simulate pre-copy policies over dirty traces, deterministically, against xen-4.17',
  help: `
Runs the same policy code as a live migration (libs/policy) on a virtual clock over a dirty trace:
generated from a workload model (--workloads, with --memory, --free, --hot-set, --zipf,
--write-scale, --seeds) or recorded from an emulated guest (--trace FILE, from "ferry trace record").
Variants (--policies): xen-4.17, xen-legacy, layered, each optionally "+compaction" (the
simulator sends every page as data, as Xen's stream does, so "+zero" changes nothing here).
Layered parameters sweep as lists: --window 2,4 --threshold 2,3 --demote-after 1,2
--downtime-target 0,5. Every row is compared with xen-4.17 (no compaction) of the same workload,
seed and bandwidth. The same inputs always give the same output.`,
  async run(argv) {
    const { values } = parse(argv, {
      workloads: { type: 'string' },
      trace: { type: 'string' },
      policies: { type: 'string' },
      bandwidth: { type: 'string' },
      memory: { type: 'string' },
      free: { type: 'string' },
      'hot-set': { type: 'string' },
      zipf: { type: 'string' },
      'write-scale': { type: 'string' },
      seeds: { type: 'string' },
      window: { type: 'string' },
      threshold: { type: 'string' },
      'demote-after': { type: 'string' },
      'downtime-target': { type: 'string' },
      json: { type: 'string' },
    });
    const variants = list(values.policies, VARIANTS_DEFAULT.join(',')).map(variantOrUsage);
    const bandwidths = list(values.bandwidth, '1gbit').map(parseBandwidthBits);
    if (bandwidths.some((b) => b <= 0)) throw new UsageError('--bandwidth must be positive for the simulator');
    const seeds = numbers(values.seeds, 'seeds', 1);
    const layeredGrid: Array<{ window: number; threshold: number; demoteAfter: number; target: number }> = [];
    for (const window of numbers(values.window, 'window', 4))
      for (const threshold of numbers(values.threshold, 'threshold', 3))
        for (const demoteAfter of numbers(values['demote-after'], 'demote-after', 1))
          for (const target of numbers(values['downtime-target'], 'downtime-target', 0)) {
            if (threshold > window) continue;
            layeredGrid.push({ window, threshold, demoteAfter, target });
          }

    const traces: Array<{ name: string; seed: number; trace: DirtyTrace }> = [];
    if (values.trace) {
      const file = JSON.parse(readFileSync(values.trace, 'utf8'));
      traces.push({ name: `trace:${file.workload ?? values.trace}`, seed: 0, trace: new RecordedTrace(file) });
    } else {
      for (const w of list(values.workloads, 'kv')) {
        if (!(SIM_WORKLOADS as string[]).includes(w)) throw new UsageError(`unknown workload "${w}" (one of ${SIM_WORKLOADS.join(', ')})`);
        for (const seed of seeds) {
          const model = workloadModel(w as SimWorkload, {
            memoryBytes: parseBytes(values.memory ?? '256MiB'),
            freeFraction: num(values.free, 'free', 0.5),
            hotSetFraction: num(values['hot-set'], 'hot-set', 0),
            zipfS: num(values.zipf, 'zipf', 0),
            writeRateScale: num(values['write-scale'], 'write-scale', 1),
            seed,
          });
          traces.push({ name: w, seed, trace: new ModelTrace(model) });
        }
      }
    }

    const rows: SimRow[] = [];
    for (const t of traces) {
      for (const bandwidthBits of bandwidths) {
        const link = { bandwidthBits };
        const base = await simulate({ trace: t.trace, policy: 'xen-4.17', compaction: false, link });
        const row = (variant: Variant, r: SimResult, layered: SimRow['layered']): SimRow => ({
          workload: t.name,
          seed: t.seed,
          bandwidth_bits: bandwidthBits,
          variant: variant.label,
          layered,
          rounds: r.rounds.length,
          pages_sent: r.pagesSent,
          bytes_sent: r.bytesSent,
          total_ms: round1(r.totalMs),
          downtime_ms: round1(r.downtimeMs),
          balloon_released_pages: r.balloonReleasedPages,
          deferred_pages: r.deferredPages,
          stop_reason: r.stopReason,
          ratio_bytes: round3(r.bytesSent / base.bytesSent),
          ratio_total: round3(r.totalMs / base.totalMs),
          ratio_downtime: round3(r.downtimeMs / base.downtimeMs),
          pages_per_round: r.rounds.map((x) => x.pagesSent),
        });
        for (const v of variants) {
          const grid = v.policy === 'layered' ? layeredGrid : [undefined];
          for (const g of grid) {
            const r = await simulate({
              trace: t.trace,
              policy: v.policy as PolicyName,
              compaction: v.compaction,
              link,
              ...(g ? { layered: { window: g.window, threshold: g.threshold, demoteAfter: g.demoteAfter }, layeredStop: { downtimeTargetMs: g.target } } : {}),
            });
            rows.push(row(v, r, g ? { window: g.window, threshold: g.threshold, demote_after: g.demoteAfter, downtime_target_ms: g.target } : null));
          }
        }
      }
    }
    printTable(rows);
    if (values.json) {
      writeFileSync(values.json, JSON.stringify({ generated_by: `ferry sim ${argv.join(' ')}`, rows }, null, 2));
      console.log(`\nwrote ${rows.length} rows to ${values.json}`);
    }
    return 0;
  },
};

const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

function printTable(rows: SimRow[]): void {
  const header = ['workload', 'seed', 'bw', 'variant', 'W/D/dem/T', 'rounds', 'MiB sent', 'total ms', 'down ms', 'bytes×', 'total×', 'down×', 'stop'];
  const body = rows.map((r) => [
    r.workload,
    String(r.seed),
    `${r.bandwidth_bits / 1e6}M`,
    r.variant,
    r.layered ? `${r.layered.window}/${r.layered.threshold}/${r.layered.demote_after}/${r.layered.downtime_target_ms}` : '-',
    String(r.rounds),
    (r.bytes_sent / 1048576).toFixed(1),
    r.total_ms.toFixed(0),
    r.downtime_ms.toFixed(1),
    r.ratio_bytes.toFixed(2),
    r.ratio_total.toFixed(2),
    r.ratio_downtime.toFixed(2),
    r.stop_reason,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(fmt(header));
  for (const b of body) console.log(fmt(b));
}
