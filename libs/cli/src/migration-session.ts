// One migration as a user runs it: optional client load on the guest's kv service (following the
// guest to its new host), the migration itself with its events, and the summary of both.

import { FerryClient, migrationSummary, type MigrationSummary, type StartMigrationInput } from '@ferry/client';
import { LoadGenerator, type LoadStats } from '@ferry/guest';
import { DomainState, FailureCode, MigrationPhase, type MigrationEvent } from '@ferry/proto';

export interface AppStats {
  requests: number;
  errors: number;
  max_gap_ms: number;
  lost_writes: number;
  acked_writes: number;
  wrong_reads: number;
}

export interface SessionResult {
  summary: MigrationSummary;
  app?: AppStats;
  failure?: { code: string; reason: string; phase: string };
}

/** The running domain's kv service address, wherever it runs now. */
export async function currentServiceAddress(ferry: FerryClient, domain: string): Promise<string | null> {
  const res = await ferry.listDomains();
  const d = res.domains.find((x) => x.name === domain && x.state === DomainState.DOMAIN_STATE_RUNNING);
  return d?.serviceAddress || null;
}

export async function runMigrationSession(
  ferry: FerryClient,
  input: StartMigrationInput,
  opts: { load?: boolean; loadWriteRate?: number; onEvent?: (e: MigrationEvent) => void } = {},
): Promise<SessionResult> {
  let load: LoadGenerator | undefined;
  if (opts.load) {
    const first = await currentServiceAddress(ferry, input.domainName);
    if (!first) throw new Error(`${input.domainName} publishes no service address: --load needs a running kv guest`);
    load = new LoadGenerator({ resolveAddress: () => currentServiceAddress(ferry, input.domainName), writeRate: opts.loadWriteRate ?? 200 });
    load.start();
    await withTimeout(load.whenAcked(20), 30_000, 'the guest did not acknowledge the first writes of the load');
  }
  let migrationId: string | undefined;
  try {
    const started = await ferry.startMigration(input);
    migrationId = started.migration?.id;
    if (!migrationId) throw new Error('StartMigration returned no migration');
    let final = started.migration!;
    for await (const e of ferry.watch(migrationId)) {
      opts.onEvent?.(e);
      if (e.migration) final = e.migration;
    }
    final = await ferry.getMigration(migrationId);
    let app: AppStats | undefined;
    if (load) {
      // Keep the client going a little so it sees the guest answer from wherever it runs now.
      const ackedAtEnd = load.stats().acked_writes;
      await withTimeout(load.whenAcked(ackedAtEnd + 20), 30_000, 'the guest stopped acknowledging writes after the migration').catch(() => {});
      await load.stop();
      const s: LoadStats = await load.verify();
      app = { requests: s.requests, errors: s.errors, max_gap_ms: s.max_gap_ms, lost_writes: s.lost_writes, acked_writes: s.acked_writes, wrong_reads: s.wrong_reads };
      load = undefined;
    }
    const f = final.failure;
    return {
      summary: migrationSummary(final),
      ...(app ? { app } : {}),
      ...(f && f.reason ? { failure: { code: enumName(FailureCode, f.code, 'FAILURE_CODE_'), reason: f.reason, phase: enumName(MigrationPhase, f.phase, 'MIGRATION_PHASE_') } } : {}),
    };
  } finally {
    await load?.stop();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}

/** "MIGRATION_PHASE_PRECOPY" → "precopy". */
export function enumName(e: Record<number, string>, value: number, prefix: string): string {
  return (e[value] ?? String(value)).replace(prefix, '').toLowerCase();
}
