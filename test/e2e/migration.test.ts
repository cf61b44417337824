// End to end: real processes (NATS, two emulated Xen hosts with their four services each, the
// coordinator), real gRPC, real bytes moved and checked at the destination.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KvClient } from '@ferry/guest';
import { MigrationOutcome, MigrationPhase, WorkloadKind } from '@ferry/proto';
import { runMigrationSession } from '../../libs/cli/src/migration-session';
import { waitFor } from '@ferry/testing';
import { leftoverShm, running, startTestCluster, type TestCluster } from '../support/cluster';

const MiB = 1024 * 1024;

describe('live migration end to end', { timeout: 20 * 60_000 }, () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster(2);
  });
  after(async () => {
    const emuPids = c ? c.lab.processes.filter((p) => p.name.endsWith('/emu-host')).map((p) => p.pid) : [];
    await c?.close();
    assert.deepEqual(leftoverShm(emuPids), [], 'every shared-memory object is removed');
  });

  async function onlyOn(name: string, host: string) {
    const ds = await c.domainsNamed(name);
    assert.equal(ds.length, 1, `exactly one ${name}: ${JSON.stringify(ds.map((d) => [d.host, d.state]))}`);
    assert.equal(ds[0].host, host);
    assert.ok(running(ds[0]), `${name} is running`);
    const elsewhere = (await c.ferry.listDomains()).domains.filter((d) => d.host !== host && d.name.startsWith(name));
    assert.deepEqual(elsewhere.map((d) => `${d.host}/${d.name}`), [], 'no copy of the domain on another host');
    return ds[0];
  }

  test('an idle guest migrates with its memory verified', async () => {
    await c.ferry.createDomain('host-1', { name: 'idle-1', memoryBytes: 64 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_IDLE, seed: 1, freeFraction: 0.5 } });
    const r = await runMigrationSession(c.ferry, { domainName: 'idle-1', targetHost: 'host-2', policy: 'xen-4.17', options: { verify: true } });
    assert.equal(r.summary.outcome, 'succeeded', JSON.stringify(r));
    assert.equal(r.summary.memory_verified, true);
    assert.ok(r.summary.rounds >= 2);
    assert.ok(r.summary.pages_sent >= (64 * MiB) / 4096 / 2, 'at least the used half was sent');
    await onlyOn('idle-1', 'host-2');
  });

  test('a kv guest under load migrates: memory verified, data intact, zero lost writes, serving from the target', async () => {
    const d = await c.ferry.createDomain('host-1', { name: 'kv-1', memoryBytes: 128 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 2, freeFraction: 0.5 } });
    const before = await KvClient.connect(d.serviceAddress);
    for (let i = 0; i < 100; i++) await before.set(`pre-${i}`, `value-${i}`);
    before.close();

    const r = await runMigrationSession(c.ferry, { domainName: 'kv-1', targetHost: 'host-2', policy: 'layered', options: { verify: true } }, { load: true });
    assert.equal(r.summary.outcome, 'succeeded', JSON.stringify(r));
    assert.equal(r.summary.memory_verified, true);
    assert.ok(r.app, 'the load ran');
    assert.ok(r.app.acked_writes > 0);
    assert.equal(r.app.lost_writes, 0);
    assert.equal(r.app.wrong_reads, 0);

    const now = await onlyOn('kv-1', 'host-2');
    assert.notEqual(now.serviceAddress, d.serviceAddress, 'the guest serves from its new host');
    const after = await KvClient.connect(now.serviceAddress);
    try {
      for (let i = 0; i < 100; i++) assert.equal(await after.get(`pre-${i}`), `value-${i}`);
    } finally {
      after.close();
    }
  });

  test('a cancel mid-round rolls back: the guest runs on its source only and the target domain is gone', async () => {
    const d = await c.ferry.createDomain('host-1', { name: 'kv-cancel', memoryBytes: 128 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 3, freeFraction: 0.5 } });
    // 50 Mbit/s makes round 0 of the used half last ~10 s, so the cancel lands mid-round.
    const started = await c.ferry.startMigration({ domainName: 'kv-cancel', targetHost: 'host-2', policy: 'xen-4.17', options: { bandwidthBps: 50_000_000 } });
    const id = started.migration!.id;
    for await (const e of c.ferry.watch(id)) {
      if (e.event?.$case === 'phaseChanged' && e.event.phaseChanged.to === MigrationPhase.MIGRATION_PHASE_PRECOPY) break;
    }
    await c.ferry.cancelMigration(id, 'test: cancel mid-round');
    const m = await waitFor('the migration to end', async () => {
      const x = await c.ferry.getMigration(id);
      return x.phase === MigrationPhase.MIGRATION_PHASE_DONE ? x : undefined;
    }, 120_000);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_CANCELLED);
    const back = await onlyOn('kv-cancel', 'host-1');
    assert.equal(back.logDirty, false, 'log-dirty is off on the source');
    const kv = await KvClient.connect(back.serviceAddress || d.serviceAddress);
    try {
      await kv.set('after-cancel', 'yes');
      assert.equal(await kv.get('after-cancel'), 'yes');
    } finally {
      kv.close();
    }
  });

  test('a page-streamer killed mid-copy rolls back: the guest runs on its source only', async () => {
    await c.ferry.createDomain('host-2', { name: 'kv-kill', memoryBytes: 128 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 4, freeFraction: 0.5 } });
    const started = await c.ferry.startMigration({ domainName: 'kv-kill', targetHost: 'host-1', policy: 'xen-4.17', options: { bandwidthBps: 50_000_000 } });
    const id = started.migration!.id;
    let sawEnd = false;
    for await (const e of c.ferry.watch(id)) {
      if (e.event?.$case === 'phaseChanged' && e.event.phaseChanged.to === MigrationPhase.MIGRATION_PHASE_PRECOPY) {
        c.kill('host-2/page-streamer'); // the source's streamer, in the middle of round 0
      }
      if (e.event?.$case === 'migrationFailed' || e.event?.$case === 'migrationCompleted' || e.event?.$case === 'migrationCancelled') sawEnd = true;
    }
    assert.ok(sawEnd, 'the watch ended with a terminal event');
    const m = await c.ferry.getMigration(id);
    assert.equal(m.outcome, MigrationOutcome.MIGRATION_OUTCOME_ROLLED_BACK);
    assert.ok(m.failure?.reason, 'a failure reason is recorded');
    await onlyOn('kv-kill', 'host-2');
  });
});
