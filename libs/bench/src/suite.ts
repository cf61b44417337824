// ferry bench: real live migrations in a lab, every workload × policy variant × seed with the same
// guest parameters and one bandwidth cap, reported next to xen-4.17 of the same workload and seed.

import { credentials } from '@grpc/grpc-js';
import { FerryClient, migrationSummary, workloadToProto, type MigrationSummary } from '@ferry/client';
import { HostAgentClient, WorkloadKind, type Migration } from '@ferry/proto';
import { call } from '@ferry/runtime';
import type { Variant } from './variants';

export const BENCH_WORKLOADS = ['kv', 'web', 'db', 'compile', 'memtest', 'idle'] as const;
export type BenchWorkload = (typeof BENCH_WORKLOADS)[number];


export interface BenchGuest {
  memoryBytes: number;
  freeFraction: number;
  writeRate: number;
  hotSetFraction: number;
  zipfS: number;
  phaseSeconds: number;
  pattern?: 'sequential' | 'random';
}

export interface BenchOptions {
  coordinator: string;
  source: string;
  target: string;
  workloads: BenchWorkload[];
  variants: Variant[];
  seeds: number[];
  guest: BenchGuest;
  bandwidthBits: number;
  /** Seconds the guest runs before the migration starts (the workload reaches its steady state). */
  warmupSeconds: number;
  verify: boolean;
  log: (line: string) => void;
}

export interface BenchRun extends MigrationSummary {
  workload: BenchWorkload;
  seed: number;
  variant: string;
  compaction: boolean;
  /** Pages sent and dirty pages per round, the last being stop-and-copy. */
  pages_per_round: number[];
  dirty_per_round: number[];
  stop_reason: string;
  ratio_bytes?: number;
  ratio_total?: number;
  ratio_downtime?: number;
}

export async function runBench(opts: BenchOptions): Promise<BenchRun[]> {
  const ferry = new FerryClient(opts.coordinator, { deadlineMs: 180_000 });
  const runs: BenchRun[] = [];
  try {
    const hosts = await ferry.listHosts();
    const targetAgent = hosts.find((h) => h.host?.name === opts.target)?.host?.endpoints?.hostAgent;
    if (!targetAgent) throw new Error(`bench: target host ${opts.target} is not registered`);
    const agent = new HostAgentClient(targetAgent, credentials.createInsecure());
    try {
      await warmUp(ferry, agent, opts);
      for (const workload of opts.workloads) {
        for (const seed of opts.seeds) {
          const group: BenchRun[] = [];
          for (const [i, variant] of opts.variants.entries()) {
            const name = `bench-${workload}-${seed}-${i}`;
            opts.log(`${workload} seed ${seed}: ${variant.label} …`);
            await ferry.createDomain(opts.source, {
              name,
              memoryBytes: opts.guest.memoryBytes,
              workload: workloadToProto({ kind: workload, seed, ...opts.guest }),
            });
            await new Promise((r) => setTimeout(r, opts.warmupSeconds * 1000));
            const started = await ferry.startMigration({
              domainName: name,
              targetHost: opts.target,
              policy: variant.policy,
              options: { bandwidthBps: opts.bandwidthBits, verify: opts.verify, compaction: variant.compaction, zeroPageElision: variant.zeroElision },
            });
            const m = await ferry.waitForEnd(started.migration!.id);
            const run = toRun(m, workload, seed, variant);
            group.push(run);
            opts.log(
              `  ${run.outcome}: ${run.rounds} rounds, ${(run.bytes_sent / 1048576).toFixed(1)} MiB, total ${run.total_ms} ms, downtime ${run.downtime_ms} ms (${run.stop_reason})`,
            );
            await destroyEverywhere(ferry, agent, name, opts.target);
          }
          const base = group.find((r) => r.variant === 'xen-4.17' && r.outcome === 'succeeded');
          for (const r of group) {
            if (base && r.outcome === 'succeeded') {
              r.ratio_bytes = round3(r.bytes_sent / base.bytes_sent);
              r.ratio_total = round3(r.total_ms / base.total_ms);
              r.ratio_downtime = round3(r.downtime_ms / Math.max(1, base.downtime_ms));
            }
          }
          runs.push(...group);
        }
      }
    } finally {
      agent.close();
    }
  } finally {
    ferry.close();
  }
  return runs;
}

function toRun(m: Migration, workload: BenchWorkload, seed: number, variant: Variant): BenchRun {
  const rounds = m.rounds ?? [];
  return {
    ...migrationSummary(m),
    workload,
    seed,
    variant: variant.label,
    compaction: variant.compaction,
    pages_per_round: rounds.map((r) => Number(r.pagesSent)),
    dirty_per_round: rounds.map((r) => Number(r.dirtyCount)),
    // Why pre-copy ended: the decision of the last live round (the final round's says "final round").
    stop_reason: rounds.filter((r) => !r.final && r.decisionReason).at(-1)?.decisionReason ?? '',
  };
}

/**
 * One throwaway migration first: the first migration of a fresh lab pays for connections, JIT
 * warm-up and thread pools, which would otherwise all land on whichever variant runs first.
 */
async function warmUp(ferry: FerryClient, agent: HostAgentClient, opts: BenchOptions): Promise<void> {
  const name = 'bench-warmup';
  opts.log('warm-up migration (not measured) …');
  await ferry.createDomain(opts.source, { name, memoryBytes: 64 * 1024 * 1024, workload: { kind: WorkloadKind.WORKLOAD_KIND_IDLE, seed: 1, freeFraction: 0.5 } });
  const started = await ferry.startMigration({ domainName: name, targetHost: opts.target, policy: 'xen-4.17', options: { bandwidthBps: opts.bandwidthBits } });
  await ferry.waitForEnd(started.migration!.id);
  await destroyEverywhere(ferry, agent, name, opts.target);
}

/** Removes the bench guest from the target (where a successful migration left it). */
async function destroyEverywhere(ferry: FerryClient, targetAgent: HostAgentClient, name: string, target: string): Promise<void> {
  const res = await ferry.listDomains();
  for (const d of res.domains.filter((x) => x.name === name)) {
    if (d.host !== target) throw new Error(`bench: ${name} is still on ${d.host} (the migration did not move it); stop here`);
    await call(targetAgent.destroyDomain, targetAgent, { domid: d.domid }, 60_000);
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
