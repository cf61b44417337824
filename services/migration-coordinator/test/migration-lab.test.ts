// Migrations through the coordinator on a real local cluster (libs/lab): NATS, two emulated Xen
// hosts each with host-agent, memory-tracker, balloon-manager and page-streamer, and the
// coordinator, every one a separate process. Covers a verified migration under client load, the
// layered policy with compaction, the one-migration-per-domain rule and idempotency keys, a cancel
// during pre-copy, and the rollbacks after a coordinator crash and after the target's streamer
// dies. A bandwidth cap keeps round 0 long enough for the cancel and the faults to land in
// pre-copy: it bounds the round's duration from below, which a busy machine only lengthens.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { FerryClient, FerryClientError, migrationSummary } from '@ferry/client';
import { LoadGenerator } from '@ferry/guest';
import { MigrationEvents } from '@ferry/cluster';
import { readLabState, startLab, stopLab, stopProcess, type LabState } from '@ferry/lab';
import {
  CompactionTimeoutAction,
  DomainState,
  FailureCode,
  MigrationOutcome,
  MigrationPhase as P,
  RoundDecision,
  WorkloadKind,
  type Domain,
  type Migration,
  type MigrationEvent,
} from '@ferry/proto';
import { startNats, tempDir, type NatsFixture } from '@ferry/testing';
import { startCoordinator, type CoordinatorProcess } from './fixtures';

const LONG = { timeout: 900_000 };
const MiB = 1024 * 1024;
/** Slow enough that round 0 of a 64 MiB guest takes many seconds. */
const SLOW_BPS = 20_000_000;

async function collect(it: AsyncIterable<MigrationEvent>): Promise<MigrationEvent[]> {
  const out: MigrationEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

function phasesOf(events: MigrationEvent[]): P[] {
  return events.flatMap((e) => (e.event?.$case === 'phaseChanged' ? [e.event.phaseChanged.to] : []));
}

describe('migrations on a local cluster', LONG, () => {
  const tmp = tempDir('ferry-lab');
  const labDir = join(tmp.path, 'lab');
  let nats: NatsFixture;
  let lab: LabState;
  let ferry: FerryClient;
  let replacement: CoordinatorProcess | undefined;

  /** The domain's copies across the cluster. */
  async function copies(name: string): Promise<Domain[]> {
    const res = await ferry.listDomains();
    assert.deepEqual(res.unreachableHosts, []);
    return res.domains.filter((d) => d.name === name);
  }

  /** Waits until pre-flight would accept the move (a new guest needs a moment to boot). */
  async function readyToMove(name: string, target: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const v = await ferry.startMigration({ domainName: name, targetHost: target, validateOnly: true });
      if (v.preflightReasons.length === 0) return;
      if (Date.now() > deadline) assert.fail(`pre-flight still refuses: ${v.preflightReasons.map((r) => r.message).join('; ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Starts a migration and waits until it is in pre-copy. */
  async function startAndReachPrecopy(name: string, target: string): Promise<Migration> {
    const { migration } = await ferry.startMigration({ domainName: name, targetHost: target, policy: 'xen-4.17', options: { bandwidthBps: BigInt(SLOW_BPS) } });
    assert.ok(migration);
    for await (const e of ferry.watch(migration.id)) {
      if (e.event?.$case === 'phaseChanged' && e.event.phaseChanged.to === P.MIGRATION_PHASE_PRECOPY) break;
    }
    return migration;
  }

  function assertRunsOnlyOn(list: Domain[], host: string): void {
    assert.deepEqual(
      list.map((d) => [d.host, d.state]),
      [[host, DomainState.DOMAIN_STATE_RUNNING]],
      'exactly one copy, running',
    );
    assert.equal(list[0].logDirty, false, 'log-dirty is off');
    assert.equal(list[0].migrationId, '', 'no migration holds the domain any more');
  }

  before(async () => {
    nats = await startNats();
    lab = await startLab({ dir: labDir, hosts: 2, natsUrl: nats.url, capacityBytes: 1024 ** 3 });
    ferry = new FerryClient(lab.coordinator, { deadlineMs: 120_000 });
    await ferry.createDomain('host-1', { name: 'web-1', memoryBytes: 64 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, writeRate: 200, freeFraction: 0.5, seed: 7 } });
    await readyToMove('web-1', 'host-2');
  });

  after(async () => {
    ferry?.close();
    await replacement?.stop();
    await stopLab(labDir);
    await nats?.stop();
    tmp.remove();
  });

  test('a verified migration of a kv guest under load: one domain, running on the target, no write lost', async () => {
    const address = async () => (await copies('web-1')).find((d) => d.state === DomainState.DOMAIN_STATE_RUNNING)?.serviceAddress || null;
    const load = new LoadGenerator({ resolveAddress: address, writeRate: 100 });
    load.start();
    try {
      await load.whenAcked(20);
      const started = await ferry.startMigration({ domainName: 'web-1', targetHost: 'host-2', policy: 'xen-4.17', options: { verify: true }, requestId: 'first-move' });
      assert.equal(started.created, true);
      const m0 = started.migration!;
      assert.equal(m0.phase, P.MIGRATION_PHASE_PENDING);
      assert.equal(m0.sourceHost, 'host-1', 'the source was found by looking the domain up');
      assert.match(m0.traceId, /^[0-9a-f]{32}$/);

      // The same idempotency key returns the same migration; another request is refused.
      const retry = await ferry.startMigration({ domainName: 'web-1', targetHost: 'host-2', requestId: 'first-move' });
      assert.equal(retry.created, false);
      assert.equal(retry.migration?.id, m0.id);
      const refused = await ferry.startMigration({ domainName: 'web-1', targetHost: 'host-2' }).catch((e: unknown) => e);
      assert.ok(refused instanceof FerryClientError);
      assert.equal(refused.code, status.FAILED_PRECONDITION);
      assert.equal(refused.reason, 'MIGRATION_IN_FLIGHT');

      const events = await collect(ferry.watch(m0.id));
      const m = await ferry.getMigration(m0.id);
      assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, m.failure?.reason);
      assert.deepEqual(
        events.map((e) => Number(e.sequence)),
        events.map((_, i) => i + 1),
      );
      assert.equal(events.at(-1)?.event?.$case, 'migrationCompleted');
      assert.deepEqual(phasesOf(events), [
        P.MIGRATION_PHASE_PENDING,
        P.MIGRATION_PHASE_PREFLIGHT,
        P.MIGRATION_PHASE_PREPARING_TARGET,
        P.MIGRATION_PHASE_PRECOPY,
        P.MIGRATION_PHASE_STOP_AND_COPY,
        P.MIGRATION_PHASE_VERIFYING,
        P.MIGRATION_PHASE_COMMITTED,
        P.MIGRATION_PHASE_RESUMING_TARGET,
        P.MIGRATION_PHASE_CLEANING_UP,
        P.MIGRATION_PHASE_DONE,
      ]);
      assert.deepEqual(
        m.phaseTransitions.map((t) => t.phase),
        phasesOf(events),
        'every transition is recorded with its time',
      );
      const rounds = events.flatMap((e) => (e.event?.$case === 'roundCompleted' ? [e.event.roundCompleted.round!] : []));
      assert.equal(rounds.length, m.totals?.rounds);
      assert.deepEqual(rounds, m.rounds);
      assert.equal(rounds[0].round, 0);
      assert.equal(rounds.at(-1)?.final, true);
      assert.ok(rounds.slice(0, -1).every((r) => r.decision !== RoundDecision.ROUND_DECISION_UNSPECIFIED && r.decisionReason !== ''));
      assert.ok(rounds.length <= 5 + 1, 'xen-4.17: at most 5 live rounds and the final one');

      const s = migrationSummary(m);
      assert.equal(s.outcome, 'succeeded');
      assert.equal(s.policy, 'xen-4.17');
      assert.equal(s.memory_verified, true);
      assert.ok(s.downtime_ms > 0 && s.downtime_ms < s.total_ms);
      assert.ok(s.pages_sent >= Number(m.totals?.populatedPages));
      assert.ok(s.bytes_sent > s.pages_sent - s.zero_pages);
      assert.equal(s.balloon_released_pages, 0, 'the Xen baselines do not compact');

      // Every event in NATS carries the migration's trace context.
      const nc = await nats.connect();
      try {
        const stored = [];
        for await (const e of (await MigrationEvents.open(nc)).read(m.id)) stored.push(e);
        assert.equal(stored.length, events.length);
        for (const e of stored) assert.match(e.traceparent ?? '', new RegExp(`^00-${m.traceId}-[0-9a-f]{16}-0[01]$`));
      } finally {
        await nc.close();
      }

      assertRunsOnlyOn(await copies('web-1'), 'host-2');
      // The guest answers from its new host, with every write it acknowledged.
      await load.whenAcked(load.stats().acked_writes + 20);
    } finally {
      await load.stop();
    }
    const stats = await load.verify();
    assert.equal(stats.lost_writes, 0);
    assert.equal(stats.wrong_reads, 0);
  });

  test('layered with compaction: the balloon hands free memory back before pre-copy', async () => {
    await readyToMove('web-1', 'host-1');
    const { migration } = await ferry.startMigration({ domainName: 'web-1', sourceHost: 'host-2', targetHost: 'host-1', policy: 'layered' });
    const m = await ferry.waitForEnd(migration!.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, m.failure?.reason);
    assert.equal(m.options?.compaction, true);
    assert.ok(m.compaction, 'the compaction result is recorded');
    assert.ok(m.phaseTransitions.some((t) => t.phase === P.MIGRATION_PHASE_COMPACTING));
    const s = migrationSummary(m);
    assert.equal(s.policy, 'layered');
    assert.ok(s.balloon_released_pages > 0, 'half the guest is free: compaction releases pages');
    assert.ok(s.pages_sent < 64 * 256, 'released pages are never sent');
    assertRunsOnlyOn(await copies('web-1'), 'host-1');
  });

  test('compaction that falls short with on_compaction_timeout FAIL rolls back, and the target prepared meanwhile goes too', async () => {
    await readyToMove('web-1', 'host-2');
    const { migration } = await ferry.startMigration({
      domainName: 'web-1',
      targetHost: 'host-2',
      policy: 'layered',
      // No balloon settles within a millisecond: compaction falls short.
      options: { compaction: true, compactionSettleTimeoutMs: 1n, onCompactionTimeout: CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL },
    });
    const m = await ferry.waitForEnd(migration!.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK, m.failure?.reason);
    assert.equal(m.failure?.code, FailureCode.FAILURE_CODE_COMPACTION_FAILED);
    assert.equal(m.failure?.phase, P.MIGRATION_PHASE_COMPACTING);
    assert.ok(m.targetDomid > 0, 'the target was prepared while the guest compacted');
    assert.ok(!m.phaseTransitions.some((t) => t.phase === P.MIGRATION_PHASE_PREPARING_TARGET));
    assert.deepEqual(m.warnings, []);
    assertRunsOnlyOn(await copies('web-1'), 'host-1');
  });

  test('a cancel during pre-copy rolls back: the domain runs on the source as before', async () => {
    await readyToMove('web-1', 'host-2');
    const m0 = await startAndReachPrecopy('web-1', 'host-2');
    const accepted = await ferry.cancelMigration(m0.id, 'operator changed their mind');
    assert.equal(accepted.cancelRequested, true);
    const m = await ferry.waitForEnd(m0.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED, m.failure?.reason);
    assert.equal(m.failure?.code, FailureCode.FAILURE_CODE_CANCELLED);
    assert.equal(m.failure?.reason, 'operator changed their mind');
    assert.equal(m.cancelReason, 'operator changed their mind');
    assert.deepEqual(m.phaseTransitions.slice(-2).map((t) => t.phase), [P.MIGRATION_PHASE_ROLLING_BACK, P.MIGRATION_PHASE_DONE]);
    assert.deepEqual(m.warnings, []);
    assertRunsOnlyOn(await copies('web-1'), 'host-1');
    // Cancelling again succeeds; cancelling a finished migration of another kind does not.
    assert.equal((await ferry.cancelMigration(m0.id)).outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED);
    const done = (await ferry.listMigrations({ outcome: MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED })).migrations[0];
    const refused = await ferry.cancelMigration(done.id).catch((e: unknown) => e);
    assert.ok(refused instanceof FerryClientError && refused.reason === 'MIGRATION_ENDED');
  });

  test('a cancel during stop-and-copy resumes the suspended guest on the source', async () => {
    // A busy writer and a single live round: the final round carries what round 0 left dirty,
    // which at the capped bandwidth takes a while; the cancel lands while the guest is suspended.
    await ferry.createDomain('host-1', {
      name: 'busy-1',
      memoryBytes: 64 * MiB,
      workload: { kind: WorkloadKind.WORKLOAD_KIND_MEMTEST, writeRate: 4000, hotSetFraction: 0.5, freeFraction: 0.5, seed: 3 },
    });
    await readyToMove('busy-1', 'host-2');
    const { migration } = await ferry.startMigration({
      domainName: 'busy-1',
      targetHost: 'host-2',
      policy: 'xen-4.17',
      options: { bandwidthBps: BigInt(SLOW_BPS), maxRounds: 1 },
    });
    for await (const e of ferry.watch(migration!.id)) {
      if (e.event?.$case === 'phaseChanged' && e.event.phaseChanged.to === P.MIGRATION_PHASE_STOP_AND_COPY) break;
    }
    await ferry.cancelMigration(migration!.id, 'too much downtime');
    const m = await ferry.waitForEnd(migration!.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED, m.failure?.reason);
    assert.equal(m.failure?.phase, P.MIGRATION_PHASE_STOP_AND_COPY);
    assertRunsOnlyOn(await copies('busy-1'), 'host-1');
    await ferry.listDomains('host-1').then((r) => {
      const d = r.domains.find((x) => x.name === 'busy-1');
      assert.equal(d?.shutdownReason, 0, 'resumed, no longer shut down for suspend');
    });
  });

  test('admission: a second migration out of the same source waits in PENDING, then runs', async () => {
    await readyToMove('web-1', 'host-2');
    const first = (await ferry.startMigration({ domainName: 'web-1', targetHost: 'host-2', policy: 'xen-4.17' })).migration!;
    const second = (await ferry.startMigration({ domainName: 'busy-1', targetHost: 'host-2', policy: 'xen-4.17' })).migration!;
    const [a, b] = await Promise.all([ferry.waitForEnd(first.id), ferry.waitForEnd(second.id)]);
    assert.equal(a.outcome, MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, a.failure?.reason);
    assert.equal(b.outcome, MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED, b.failure?.reason);
    const entered = (m: Migration, p: P) => m.phaseTransitions.find((t) => t.phase === p)?.enteredAt?.getTime() ?? Number.NaN;
    // One outbound migration per source host: the second was admitted only after the first ended.
    assert.ok(entered(b, P.MIGRATION_PHASE_PREFLIGHT) >= entered(a, P.MIGRATION_PHASE_DONE), 'the second waited for the first');
    assertRunsOnlyOn(await copies('web-1'), 'host-2');
    assertRunsOnlyOn(await copies('busy-1'), 'host-2');
  });

  test('the coordinator dies during pre-copy: the next one takes over and rolls back', async () => {
    await readyToMove('web-1', 'host-1');
    const m0 = await startAndReachPrecopy('web-1', 'host-1');
    const old = readLabState(labDir)?.processes.find((p) => p.name === 'migration-coordinator');
    assert.ok(old);
    process.kill(old.pid, 'SIGKILL');
    await stopProcess(old.pid);
    ferry.close();
    replacement = await startCoordinator(tmp.path, nats.url, {}, 'coordinator-2');
    ferry = new FerryClient(replacement.address, { deadlineMs: 120_000 });
    const m = await ferry.waitForEnd(m0.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK, m.failure?.reason);
    assert.equal(m.epoch, 2n, 'the new coordinator fenced the old one out with a new epoch');
    assert.equal(m.failure?.code, FailureCode.FAILURE_CODE_INTERNAL);
    assert.equal(m.failure?.phase, P.MIGRATION_PHASE_PRECOPY);
    const events = await collect(ferry.watch(m0.id));
    assert.deepEqual(
      events.map((e) => Number(e.sequence)),
      events.map((_, i) => i + 1),
      'one gap-free event sequence across both coordinators',
    );
    assertRunsOnlyOn(await copies('web-1'), 'host-2');
  });

  test("the target's page-streamer dies during pre-copy: rolled back, the leftover noted", async () => {
    await readyToMove('web-1', 'host-1');
    const m0 = await startAndReachPrecopy('web-1', 'host-1');
    const streamer = readLabState(labDir)?.processes.find((p) => p.name === 'host-1/page-streamer');
    assert.ok(streamer);
    process.kill(streamer.pid, 'SIGKILL');
    const m = await ferry.waitForEnd(m0.id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK, m.failure?.reason);
    assert.equal(m.failure?.code, FailureCode.FAILURE_CODE_TRANSFER_FAILED);
    assert.ok(
      m.warnings.some((w) => w.includes('close the receive session on host-1')),
      `warnings: ${m.warnings.join('; ')}`,
    );
    const left = await ferry.listDomains();
    assert.deepEqual(
      left.domains.filter((d) => d.name === 'web-1').map((d) => [d.host, d.state]),
      [['host-2', DomainState.DOMAIN_STATE_RUNNING]],
    );
  });
});
