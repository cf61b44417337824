// `ferry bench`: real migrations in a lab, side by side with xen-4.17, as ratios.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_VARIANTS_DEFAULT, BENCH_WORKLOADS, lineChartSvg, parseVariant, parseVariants, runBench, seedMedians, type BenchRun, type BenchWorkload, type SeedMedians, type Variant } from '@ferry/bench';
import { startLab, stopLab } from '@ferry/lab';
import { parseBandwidthBits, parseBytes } from '@ferry/runtime';
import { num, parse, UsageError } from '../args';
import type { Command } from './command';

export const bench: Command = {
  name: 'bench',
  usage: 'bench [--workloads kv,...] [--policies ...] [--memory 256MiB] [--free 0.5] [--bandwidth 1gbit] [--seeds 1] [--json FILE] [--svg-dir DIR] | bench --from FILE,... [--json FILE]',
  summary: 'measure real migrations in a lab: every policy variant against xen-4.17, as ratios',
  help: `
Starts its own two-host lab (or uses --coordinator ADDR with hosts --source/--target), and for
every workload and seed boots the same guest once per policy variant, lets it run --warmup
seconds, migrates it from host-1 to host-2 under one bandwidth cap and removes it. Variants
(--policies): xen-4.17, xen-legacy, layered, each optionally "+compaction" and "+zero", and "#2",
"#3"... to run one again under its own label (default: the ablation
${BENCH_VARIANTS_DEFAULT.join(', ')}; xen-4.17#2 is the A/A control: its ratios to xen-4.17 are
how far two identical migrations differ, the resolution of every other ratio). Guest knobs: --memory --free --write-rate --hot-set --zipf
--phase-seconds --pattern. With several seeds a second table gives, per workload and variant, the
medians over seeds and the medians of the per-seed ratios, with a 95% interval for the downtime
ratio from three seeds on (a bootstrap over the seeds: how far that median could move). --json
FILE writes every run (the "ferry migrate --json" fields, the rounds, ratios against xen-4.17) and
those medians; --svg-dir DIR writes a chart per workload (pages sent and dirty pages per round, per
variant). --from FILE,... migrates nothing: it pools the runs of earlier --json files (each run's
ratios are against xen-4.17 of its own seed and run) and prints their medians again.`,
  async run(argv) {
    const { values } = parse(argv, {
      workloads: { type: 'string' },
      policies: { type: 'string' },
      memory: { type: 'string' },
      free: { type: 'string' },
      bandwidth: { type: 'string' },
      seeds: { type: 'string' },
      'write-rate': { type: 'string' },
      'hot-set': { type: 'string' },
      zipf: { type: 'string' },
      'phase-seconds': { type: 'string' },
      pattern: { type: 'string' },
      warmup: { type: 'string' },
      verify: { type: 'boolean' },
      json: { type: 'string' },
      'svg-dir': { type: 'string' },
      coordinator: { type: 'string' },
      source: { type: 'string' },
      target: { type: 'string' },
      from: { type: 'string' },
    });
    if (values.from !== undefined) {
      const migrating = Object.keys(values).filter((k) => k !== 'from' && k !== 'json');
      if (migrating.length > 0) throw new UsageError(`--from migrates nothing; it takes only --json (not --${migrating.join(', --')})`);
      return summarizeEarlierRuns(values.from.split(','), values.json, argv);
    }
    const workloads = (values.workloads ?? BENCH_WORKLOADS.join(',')).split(',').map((w) => {
      if (!(BENCH_WORKLOADS as readonly string[]).includes(w)) throw new UsageError(`unknown workload "${w}"`);
      return w as BenchWorkload;
    });
    let variants: Variant[];
    try {
      variants = parseVariants(values.policies ?? BENCH_VARIANTS_DEFAULT.join(','));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (!variants.some((v) => v.label === 'xen-4.17')) variants.unshift(parseVariant('xen-4.17')); // the baseline of every ratio
    const pattern = values.pattern;
    if (pattern !== undefined && pattern !== 'sequential' && pattern !== 'random') throw new UsageError('--pattern is sequential or random');
    const seeds = (values.seeds ?? '1').split(',').map((s) => num(s, 'seeds', 1));
    const bandwidthBits = parseBandwidthBits(values.bandwidth ?? '1gbit');

    let labDir: string | undefined;
    let coordinator = values.coordinator;
    if (!coordinator) {
      labDir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
      console.error(`bench: starting a two-host lab in ${labDir}`);
      coordinator = (await startLab({ dir: labDir, hosts: 2, detached: false, privateNats: true })).coordinator;
    }
    const started = Date.now();
    // The lab's logs are kept when something failed: they hold the reason.
    let keepLogs = true;
    try {
      const runs = await runBench({
        coordinator,
        source: values.source ?? 'host-1',
        target: values.target ?? 'host-2',
        workloads,
        variants,
        seeds,
        guest: {
          memoryBytes: parseBytes(values.memory ?? '256MiB'),
          freeFraction: num(values.free, 'free', 0.5),
          writeRate: num(values['write-rate'], 'write-rate', 0),
          hotSetFraction: num(values['hot-set'], 'hot-set', 0),
          zipfS: num(values.zipf, 'zipf', 0),
          phaseSeconds: num(values['phase-seconds'], 'phase-seconds', 0),
          ...(pattern ? { pattern } : {}),
        },
        bandwidthBits,
        warmupSeconds: num(values.warmup, 'warmup', 3),
        verify: values.verify ?? false,
        log: (l) => console.error(`bench: ${l}`),
      });
      printTable(runs);
      const medians = seeds.length > 1 ? seedMedians(runs) : [];
      if (medians.length > 0) printMedians(medians);
      console.log(`\n${runs.length} migrations in ${((Date.now() - started) / 1000).toFixed(0)} s at ${bandwidthBits / 1e6} Mbit/s`);
      if (values.json) {
        const report = { command: `ferry bench ${argv.join(' ')}`, bandwidth_bits: bandwidthBits, runs, ...(medians.length > 0 ? { medians } : {}) };
        writeFileSync(values.json, JSON.stringify(report, null, 2));
        console.log(`wrote ${values.json}`);
      }
      if (values['svg-dir']) {
        mkdirSync(values['svg-dir'], { recursive: true });
        for (const w of workloads) {
          const ofW = runs.filter((r) => r.workload === w && r.seed === seeds[0]);
          const series = ofW.flatMap((r) => [
            { label: `${r.variant} sent`, values: r.pages_per_round },
            { label: `${r.variant} dirty`, values: r.dirty_per_round.slice(1), dashed: true },
          ]);
          const file = join(values['svg-dir'], `${w}.svg`);
          writeFileSync(file, lineChartSvg(`${w}: pages per round (seed ${seeds[0]}, ${bandwidthBits / 1e6} Mbit/s)`, 'pages (log scale)', series));
          console.log(`wrote ${file}`);
        }
      }
      keepLogs = !runs.every((r) => r.outcome === 'succeeded');
      return keepLogs ? 1 : 0;
    } finally {
      if (labDir) {
        await stopLab(labDir);
        if (keepLogs) console.error(`bench: not every migration succeeded; the lab's logs are in ${labDir}`);
        else rmSync(labDir, { recursive: true, force: true });
      }
    }
  },
};

/** `--from`: the medians of runs pooled from earlier `--json` reports. */
function summarizeEarlierRuns(files: string[], jsonOut: string | undefined, argv: string[]): number {
  const runs: BenchRun[] = [];
  for (const file of files) {
    let report: unknown;
    try {
      report = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`--from ${file}: ${(err as Error).message}`);
    }
    const fileRuns = (report as { runs?: unknown } | null)?.runs;
    if (!Array.isArray(fileRuns) || fileRuns.some((r) => typeof r?.workload !== 'string' || typeof r?.variant !== 'string' || typeof r?.downtime_ms !== 'number')) {
      throw new UsageError(`--from ${file}: not a report of ferry bench --json (no "runs" with workload, variant and downtime_ms)`);
    }
    runs.push(...(fileRuns as BenchRun[]));
  }
  const medians = seedMedians(runs);
  printMedians(medians);
  console.log(`\n${runs.length} migrations from ${files.join(', ')}`);
  if (jsonOut) {
    writeFileSync(jsonOut, JSON.stringify({ command: `ferry bench ${argv.join(' ')}`, runs, medians }, null, 2));
    console.log(`wrote ${jsonOut}`);
  }
  return 0;
}

function printMedians(rows: SeedMedians[]): void {
  const header = ['workload', 'variant', 'seeds', 'MiB sent', 'total ms', 'down ms', 'bytes×', 'total×', 'down×', 'down× 95%'];
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2));
  const body = rows.map((r) => [
    r.workload,
    r.variant,
    String(r.seeds),
    (r.bytes_sent / 1048576).toFixed(1),
    String(Math.round(r.total_ms)),
    String(Math.round(r.downtime_ms)),
    f(r.ratio_bytes),
    f(r.ratio_total),
    f(r.ratio_downtime),
    r.ratio_downtime_interval ? `${f(r.ratio_downtime_interval[0])}–${f(r.ratio_downtime_interval[1])}` : '-',
  ]);
  console.log('\nmedians over seeds (ratios: the median of each seed\'s ratio to xen-4.17)');
  printColumns(header, body);
}

function printTable(runs: BenchRun[]): void {
  const header = ['workload', 'seed', 'variant', 'outcome', 'rounds', 'MiB sent', 'total ms', 'down ms', 'bytes×', 'total×', 'down×', 'balloon MiB', 'held'];
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2));
  const body = runs.map((r) => [
    r.workload,
    String(r.seed),
    r.variant,
    r.outcome,
    String(r.rounds),
    (r.bytes_sent / 1048576).toFixed(1),
    String(r.total_ms),
    String(r.downtime_ms),
    f(r.ratio_bytes),
    f(r.ratio_total),
    f(r.ratio_downtime),
    ((r.balloon_released_pages * 4096) / 1048576).toFixed(1),
    String(r.deferred_pages),
  ]);
  printColumns(header, body);
}

function printColumns(header: string[], body: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(fmt(header));
  for (const b of body) console.log(fmt(b));
}
