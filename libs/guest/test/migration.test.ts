import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkloadSpec } from '@ferry/hypervisor';
import { createKernel, KvClient, LoadGenerator, type FerryKernel } from '../src';
import { hash3 } from '../src/checksum';
import { bootGuest, migrate, waitForProgress, waitForReport, waitUntil } from './support/guest-harness';
import { TestPlatform } from './support/test-platform';

/** A memtest data page: word 2 is the stamp of (word 0, word 1) (see stamped-pages.ts). */
function isMemtestDataPage(platform: TestPlatform, pfn: number, seed: number): boolean {
  if (!platform.isPopulated(pfn)) return false;
  const w = new Int32Array(platform.pageBytes(pfn).buffer, pfn * 4096, 3);
  return w[1] > 0 && (hash3(w[0], w[1], seed) | 0) === w[2];
}

describe('migration', { timeout: 120_000 }, () => {
  it('a kv guest written over TCP keeps every acknowledged write when moved to another platform', async (t) => {
    const first = await bootGuest({ kind: 'kv', seed: 21, freeFraction: 0.5 }, 8192);
    let platform = first.platform;
    let kernel: FerryKernel = first.kernel;
    t.after(() => kernel.halt());
    const addressBefore = await platform.xenstore.waitFor('data/service-address', (v) => v !== null);

    // A client writing and reading throughout, following the guest's published address.
    const load = new LoadGenerator({
      resolveAddress: () => platform.xenstore.values.get('data/service-address') ?? null,
      writeRate: 400,
      reconnectDelayMs: 10,
    });
    load.start();
    t.after(() => load.stop());
    await load.whenAcked(200);
    // Also a key written by hand, overwritten once, and a deleted one.
    const c = await KvClient.connect(addressBefore as string);
    await c.set('greeting', 'hello world');
    await c.set('greeting', 'hello again, world');
    await c.set('gone', 'x');
    assert.equal(await c.del('gone'), true);
    c.close();
    const opsBefore = kernel.guest!.os.ops;

    const moved = await migrate(platform, kernel, { rounds: 3 });
    platform = moved.platform;
    kernel = moved.kernel;

    const addressAfter = await platform.xenstore.waitFor('data/service-address', (v) => v !== null);
    assert.notEqual(addressAfter, addressBefore, 'the service moved to a new address');
    const acked = load.stats().acked_writes;
    await load.whenAcked(acked + 200);
    await load.stop();
    const stats = await load.verify();
    assert.equal(stats.lost_writes, 0, `lost writes: ${JSON.stringify(stats)}`);
    assert.equal(stats.wrong_reads, 0);
    assert.ok(stats.reconnects >= 1, 'the client followed the guest');

    const c2 = await KvClient.connect(addressAfter as string);
    assert.equal(await c2.get('greeting'), 'hello again, world');
    assert.equal(await c2.get('gone'), null);
    c2.close();

    const report = await waitForProgress(platform);
    assert.ok(report.ops > opsBefore, 'the op counter continued from guest memory');
    assert.equal(report.errors, 0);
    assert.equal(kernel.guest!.verifyAll(), 0);

    // Its watches are registered again on the destination: the balloon follows a new target.
    platform.xenstore.set('memory/target', String(7000 * 4), false);
    await waitUntil(() => kernel.guest!.balloon.currentPages === 7000);
    assert.equal(platform.populatedCount(), 7000);
    assert.equal(await platform.xenstore.waitFor('data/meminfo_total', (v) => v === String(7000 * 4)), String(7000 * 4));
  });

  it('every workload continues on the destination from its memory and context, with zero errors', async (t) => {
    const specs: WorkloadSpec[] = [
      { kind: 'kv', seed: 31, freeFraction: 0.5, writeRate: 2000 },
      { kind: 'web', seed: 32, freeFraction: 0.4, writeRate: 2000 },
      { kind: 'db', seed: 33, freeFraction: 0.3, writeRate: 2000 },
      { kind: 'compile', seed: 34, freeFraction: 0.4, writeRate: 2000 },
      { kind: 'memtest', seed: 35, freeFraction: 0.5, pattern: 'random' },
      { kind: 'idle', seed: 36, freeFraction: 0.8 },
    ];
    const results = await Promise.all(
      specs.map(async (spec) => {
        const g = await bootGuest(spec, 4096);
        // Balloon part of the free memory away first, so the p2m has holes that must travel too.
        g.platform.xenstore.set('memory/target', String(3800 * 4), false);
        await waitForProgress(g.platform);
        const before = g.kernel.guest!.os.ops;
        const moved = await migrate(g.platform, g.kernel, { rounds: 2 });
        t.after(() => moved.kernel.halt());
        const report = await waitForProgress(moved.platform);
        return { spec, before, report, moved };
      }),
    );
    for (const { spec, before, report, moved } of results) {
      assert.ok(report.ops > before, `${spec.kind}: continued (${before} -> ${report.ops} ops)`);
      assert.equal(report.errors, 0, `${spec.kind}: ${JSON.stringify(report)}`);
      assert.equal(moved.kernel.guest!.verifyAll(), 0, `${spec.kind}: full check on the destination`);
      assert.equal(moved.platform.populatedCount(), moved.kernel.guest!.balloon.currentPages, `${spec.kind}: p2m and balloon agree`);
      assert.equal(moved.platform.shutdownReason, null);
    }
  });

  it('catches a lost update: pages left out of the final round read as stale on the destination', async (t) => {
    const seed = 41;
    const g = await bootGuest({ kind: 'memtest', seed, freeFraction: 0.5 }, 4096);
    let skipped = 0;
    const moved = await migrate(g.platform, g.kernel, {
      rounds: 1,
      skipFinal: (pfn) => {
        const skip = isMemtestDataPage(g.platform, pfn, seed);
        if (skip) skipped++;
        return skip;
      },
    });
    t.after(() => moved.kernel.halt());
    assert.ok(skipped > 0, 'some data pages were dirty in the final round');
    // The guest may already have rewritten some of them: each rewrite checks the page first.
    moved.kernel.guest!.verifyAll();
    assert.ok(moved.kernel.guest!.os.errors >= 1, 'the stale pages are found');
    await waitForReport(moved.platform, (r) => r.errors > 0);
  });

  it('crashes the domain when a page it owns was never sent', async (t) => {
    const seed = 51;
    const g = await bootGuest({ kind: 'memtest', seed, freeFraction: 0.5 }, 4096);
    let missing = -1;
    for (let pfn = 4095; pfn > 0 && missing < 0; pfn--) if (isMemtestDataPage(g.platform, pfn, seed)) missing = pfn;
    assert.ok(missing > 0);
    const moved = await migrate(g.platform, g.kernel, { neverCopy: (pfn) => pfn === missing });
    t.after(() => moved.kernel.halt());
    await moved.platform.whenShutdown();
    assert.equal(moved.platform.shutdownReason?.reason, 'crash');
    assert.match(moved.platform.shutdownReason?.message ?? '', new RegExp(`pfn ${missing}, which is not populated`));
  });

  it('refuses to resume from a bad context or from memory that holds no guest', async () => {
    const g = await bootGuest({ kind: 'idle', seed: 61, freeFraction: 0.5 }, 1024);
    const context = g.kernel.saveContext();
    await g.kernel.halt();
    await assert.rejects(createKernel().resume(g.platform, context.subarray(0, 16)), /context is 16 bytes/);
    const bad = context.slice();
    bad[0] ^= 1;
    await assert.rejects(createKernel().resume(g.platform, bad), /bad magic/);
    await assert.rejects(createKernel().resume(new TestPlatform(1024), context), /bad superblock magic/);
    await assert.rejects(createKernel().resume(new TestPlatform(2048), context), /bad superblock magic|built for/);
  });
});
