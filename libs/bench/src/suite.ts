// ferry bench: real live migrations in a lab, every workload × policy variant × seed with the same
// guest parameters and one bandwidth cap, reported next to xen-4.17 of the same workload and seed.
// Each seed runs its variants in a rotated order (run-order.ts), so position effects average out.

import { credentials } from '@grpc/grpc-js';
import { FerryClient, migrationSummary, workloadToProto, type MigrationSummary } from '@ferry/client';
import { HostAgentClient, WorkloadKind, failureCodeToJSON, migrationPhaseToJSON, type Migration, type MigrationPhase } from '@ferry/proto';
import { call } from '@ferry/runtime';
import { runOrder } from './run-order';
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
  /** Each round's streaming time (the sender's, from taking the send set to the receiver's ack). */
  ms_per_round: number[];
  /** Time in each phase (PREFLIGHT, COMPACTING, ... CLEANING_UP), from the record's phase transitions. */
  phase_ms: Record<string, number>;
  stop_reason: string;
  /** Why the migration did not succeed (phase, code and reason), if it did not. */
  failure?: string;
  ratio_bytes?: number;
  ratio_total?: number;
  ratio_downtime?: number;
}

export async function runBench(opts: BenchOptions): Promise<BenchRun[]> {
  const ferry = new FerryClient(opts.coordinator, { deadlineMs: 180_000 });
  const agents = new Map<string, HostAgentClient>();
  const runs: BenchRun[] = [];
  try {
    for (const h of await ferry.listHosts()) {
      const name = h.host?.name;
      const endpoint = h.host?.endpoints?.hostAgent;
      if (name && endpoint && (name === opts.source || name === opts.target)) agents.set(name, new HostAgentClient(endpoint, credentials.createInsecure()));
    }
    for (const host of [opts.source, opts.target]) if (!agents.has(host)) throw new Error(`bench: host ${host} is not registered`);
    await warmUp(ferry, agents, opts);
    for (const workload of opts.workloads) {
      for (const [seedIndex, seed] of opts.seeds.entries()) {
        const group: BenchRun[] = [];
        for (const variant of runOrder(opts.variants, seedIndex)) {
          const name = `bench-${workload}-${seed}-${opts.variants.indexOf(variant)}`;
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
            run.outcome === 'succeeded'
              ? `  ${run.outcome}: ${run.rounds} rounds, ${(run.bytes_sent / 1048576).toFixed(1)} MiB, total ${run.total_ms} ms, downtime ${run.downtime_ms} ms (${run.stop_reason})`
              : `  ${run.outcome} after ${run.total_ms} ms: ${run.failure ?? 'no reason recorded'}`,
          );
          // A failed run is reported as such and the suite goes on, without its guest.
          await removeGuest(ferry, agents, name);
        }
        // Reported in the order the variants were given, whatever order they ran in.
        group.sort((a, b) => variantIndex(opts.variants, a) - variantIndex(opts.variants, b));
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
    for (const agent of agents.values()) agent.close();
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
    ms_per_round: rounds.map((r) => Number(r.elapsedMs)),
    phase_ms: phaseDurations(m),
    // Why pre-copy ended: the decision of the last live round (the final round's says "final round").
    stop_reason: rounds.filter((r) => !r.final && r.decisionReason).at(-1)?.decisionReason ?? '',
    ...(m.failure ? { failure: `${phaseLabel(m.failure.phase)}, ${failureCodeToJSON(m.failure.code)}${m.failure.host ? ` on ${m.failure.host}` : ''}: ${m.failure.reason}` } : {}),
  };
}

const phaseLabel = (p: MigrationPhase) => migrationPhaseToJSON(p).replace('MIGRATION_PHASE_', '');

/** Milliseconds from entering each phase to entering the next (DONE has none). */
export function phaseDurations(m: Pick<Migration, 'phaseTransitions'>): Record<string, number> {
  const out: Record<string, number> = {};
  const t = m.phaseTransitions;
  for (let i = 0; i + 1 < t.length; i++) {
    const from = t[i].enteredAt?.getTime();
    const to = t[i + 1].enteredAt?.getTime();
    if (from === undefined || to === undefined) continue;
    const name = phaseLabel(t[i].phase);
    out[name] = (out[name] ?? 0) + Math.max(0, to - from);
  }
  return out;
}

/**
 * One throwaway migration first: the first migration of a fresh lab pays for connections, JIT
 * warm-up and thread pools, which would otherwise all land on whichever variant runs first.
 */
async function warmUp(ferry: FerryClient, agents: Map<string, HostAgentClient>, opts: BenchOptions): Promise<void> {
  const name = 'bench-warmup';
  opts.log('warm-up migration (not measured) …');
  await ferry.createDomain(opts.source, { name, memoryBytes: 64 * 1024 * 1024, workload: { kind: WorkloadKind.WORKLOAD_KIND_IDLE, seed: 1, freeFraction: 0.5 } });
  const started = await ferry.startMigration({ domainName: name, targetHost: opts.target, policy: 'xen-4.17', options: { bandwidthBps: opts.bandwidthBits } });
  await ferry.waitForEnd(started.migration!.id);
  await removeGuest(ferry, agents, name);
}

/** Destroys the bench guest wherever it is (the target after a successful migration, else the source). */
async function removeGuest(ferry: FerryClient, agents: Map<string, HostAgentClient>, name: string): Promise<void> {
  const res = await ferry.listDomains();
  for (const d of res.domains.filter((x) => x.name === name)) {
    const agent = agents.get(d.host);
    if (!agent) throw new Error(`bench: ${name} is on ${d.host}, a host this bench does not use`);
    await call(agent.destroyDomain, agent, { domid: d.domid }, 60_000);
  }
}

const variantIndex = (variants: readonly Variant[], run: BenchRun) => variants.findIndex((v) => v.label === run.variant);

const round3 = (x: number) => Math.round(x * 1000) / 1000;
