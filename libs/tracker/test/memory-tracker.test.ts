// The memory tracker against a real emulated Xen host running a page-writing guest.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { bitmapCount, bitmapPfns, PAGE_SIZE } from '@ferry/hypervisor';
import { createLogger, FerryError } from '@ferry/runtime';
import { MemoryTracker } from '@ferry/tracker';
import { waitFor } from '@ferry/testing';
import { startEmuHosts, type TestHosts } from './support/emu';

const GUEST_PAGES = (16 * 1024 * 1024) / PAGE_SIZE;
const logger = createLogger('memory-tracker-test', {});
logger.level = 'warn';

function expectError(code: status, reason: string) {
  return (err: unknown) => {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.reason, reason, err.message);
    return true;
  };
}

describe('MemoryTracker on an emulated host', () => {
  let env: TestHosts;
  let domid: number;

  before(async () => {
    env = await startEmuHosts(['tracker-a']);
    domid = await env.hosts[0].driver.createDomain({
      name: 'writer',
      maxPages: GUEST_PAGES,
      workload: { kind: 'memtest', seed: 7, freeFraction: 0.5, writeRate: 3000, pattern: 'random' },
    });
  });

  after(async () => {
    await env?.stop();
  });

  it('tracks a running guest round by round, then the final round of the suspended guest', async () => {
    const driver = env.hosts[0].driver;
    const tracker = new MemoryTracker(driver, logger);
    const fence = { migrationId: 'mig-rounds', epoch: 1n };
    const started = await tracker.startTracking(fence, domid, { policy: 'xen-4.17' });
    assert.equal(started.maxPages, GUEST_PAGES);
    assert.equal((await driver.domainInfo(domid)).logDirty, true);
    assert.deepEqual(await tracker.startTracking(fence, domid, { policy: 'xen-4.17' }), started, 'a retried StartTracking answers the same');

    const r0 = await tracker.prepareRound(fence, 0, false);
    assert.equal(r0.pagesToSend, started.populatedPages);
    const set0 = await tracker.takeSendSet(fence.migrationId, 0);
    assert.deepEqual(bitmapPfns(set0.bitmap, set0.maxPages), bitmapPfns(await driver.p2m(domid), GUEST_PAGES));

    // The guest keeps writing: the next CLEAN finds dirty pages, and only those are sent.
    let r1 = await tracker.prepareRound(fence, 1, false);
    let round = 1;
    while (r1.dirtyCount === 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      round++;
      await tracker.takeSendSet(fence.migrationId, round - 1);
      r1 = await tracker.prepareRound(fence, round, false);
    }
    assert.ok(r1.pagesToSend > 0 && r1.pagesToSend <= r1.dirtyCount);
    assert.deepEqual(await tracker.prepareRound(fence, round, false), r1, 'a retried PrepareRound answers the stored counts');

    await assert.rejects(tracker.prepareRound(fence, round + 2, false), expectError(status.FAILED_PRECONDITION, 'ROUND_OUT_OF_ORDER'));
    await assert.rejects(tracker.takeSendSet(fence.migrationId, round - 1), expectError(status.NOT_FOUND, 'ROUND_NOT_PREPARED'));

    // The coordinator stops after this round's counts without sending it: suspend, upgrade to final.
    await driver.suspend(domid);
    const final = await tracker.prepareRound(fence, round, true);
    assert.equal(final.final, true);
    assert.ok(final.dirtyCount >= r1.dirtyCount, 'the dirty counts of both CLEANs add up');
    assert.ok(final.pagesToSend >= r1.pagesToSend, 'the unsent pages of the round are still in the final set');
    const finalSet = await tracker.takeSendSet(fence.migrationId, round);
    assert.equal(finalSet.final, true);
    assert.equal(bitmapCount(finalSet.bitmap), final.pagesToSend);
    await assert.rejects(tracker.prepareRound(fence, round + 1, false), expectError(status.FAILED_PRECONDITION, 'TRACKING_FINISHED'));

    assert.equal(await tracker.stopTracking(fence), true);
    assert.equal((await driver.domainInfo(domid)).logDirty, false);
    assert.equal(await tracker.stopTracking(fence), false, 'StopTracking is idempotent');
    await assert.rejects(tracker.prepareRound(fence, 0, false), expectError(status.NOT_FOUND, 'MIGRATION_NOT_TRACKED'));
    await driver.resumeSuspended(domid);
  });

  it('keeps a domain to one migration and fences stale coordinators', async () => {
    const driver = env.hosts[0].driver;
    const tracker = new MemoryTracker(driver, logger);
    const fence = { migrationId: 'mig-fenced', epoch: 5n };
    await tracker.startTracking(fence, domid, { policy: 'layered' });
    await assert.rejects(
      tracker.startTracking({ migrationId: 'mig-other', epoch: 1n }, domid, { policy: 'layered' }),
      expectError(status.FAILED_PRECONDITION, 'DOMAIN_TRACKED'),
    );
    await assert.rejects(tracker.probeDirtyRate({ domid, durationMs: 100, intervalMs: 50 }), expectError(status.FAILED_PRECONDITION, 'DOMAIN_TRACKED'));
    await assert.rejects(tracker.prepareRound({ migrationId: 'mig-fenced', epoch: 4n }, 0, false), expectError(status.ABORTED, 'STALE_EPOCH'));
    await tracker.prepareRound({ migrationId: 'mig-fenced', epoch: 6n }, 0, false);
    await assert.rejects(tracker.stopTracking(fence), expectError(status.ABORTED, 'STALE_EPOCH'), 'epoch 6 is now the accepted one');
    assert.equal(await tracker.stopTracking({ migrationId: 'mig-fenced', epoch: 6n }), true);
  });

  it('answers NOT_FOUND for an unknown domain or migration, INVALID_ARGUMENT for a missing fence', async () => {
    const tracker = new MemoryTracker(env.hosts[0].driver, logger);
    await assert.rejects(tracker.startTracking({ migrationId: 'mig-x', epoch: 1n }, 999, { policy: 'xen-4.17' }), expectError(status.NOT_FOUND, 'DOMAIN_NOT_FOUND'));
    await assert.rejects(tracker.takeSendSet('mig-x', 0), expectError(status.NOT_FOUND, 'MIGRATION_NOT_TRACKED'));
    await assert.rejects(tracker.prepareRound({ migrationId: '', epoch: 1n }, 0, false), expectError(status.INVALID_ARGUMENT, 'FENCE_REQUIRED'));
    // The failed start left no claim on domain 999 or on the migration.
    assert.deepEqual(tracker.trackedMigrations(), []);
  });

  it('takes over a log-dirty mode left on by a migration that died (OFF, then ENABLE)', async () => {
    const driver = env.hosts[0].driver;
    await driver.logDirtyEnable(domid);
    const tracker = new MemoryTracker(driver, logger);
    const fence = { migrationId: 'mig-leftover', epoch: 1n };
    await tracker.startTracking(fence, domid, { policy: 'xen-legacy' });
    assert.equal((await driver.domainInfo(domid)).logDirty, true);
    await tracker.stopAll();
    assert.equal((await driver.domainInfo(domid)).logDirty, false);
  });

  it('probes the dirty rate with log-dirty on only for the probe', async () => {
    const driver = env.hosts[0].driver;
    const tracker = new MemoryTracker(driver, logger);
    // Wait until the guest writes (it may still be settling after the earlier suspend/resume).
    const probe = await waitFor('a probe that sees writes', async () => {
      const p = await tracker.probeDirtyRate({ domid, durationMs: 400, intervalMs: 100 });
      return p.distinctPages > 0 ? p : undefined;
    });
    assert.ok(probe.samples >= 1);
    assert.ok(probe.meanPagesPerSecond > 0);
    assert.ok(probe.peakPagesPerSecond >= probe.meanPagesPerSecond);
    assert.ok(probe.distinctPages <= probe.populatedPages);
    assert.ok(probe.durationMs >= 300, `measured ${probe.durationMs} ms of the 400 asked`);
    assert.equal((await driver.domainInfo(domid)).logDirty, false);
    await assert.rejects(tracker.probeDirtyRate({ domid, durationMs: 60 * 60_000, intervalMs: 0 }), expectError(status.INVALID_ARGUMENT, 'PROBE_TOO_LONG'));
  });
});
