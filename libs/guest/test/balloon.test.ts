import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BALLOON_BATCH_PAGES, BALLOON_CANCELED_WAIT_MS } from '../src';
import { bootGuest, waitUntil } from './support/guest-harness';

const KIB_PER_PAGE = 4;

/** A balloon sleep hook that records delays and returns at once, except the long idle/cancelled waits. */
function recordingSleep() {
  const delays: number[] = [];
  let onDelay: (() => void) | null = null;
  return {
    delays,
    /** Resolves once a delay of `ms` has been asked for. */
    whenDelay(ms: number): Promise<void> {
      if (delays.includes(ms)) return Promise.resolve();
      return new Promise((resolve) => {
        onDelay = () => {
          if (delays.includes(ms)) resolve();
        };
      });
    },
    sleep(ms: number): Promise<void> {
      delays.push(ms);
      onDelay?.();
      if (ms >= BALLOON_CANCELED_WAIT_MS) return new Promise(() => {}); // until woken by a new target
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}

describe('balloon driver', { timeout: 60_000 }, () => {
  it('inflates in batches of at most 512 free pages, never more than is free, then backs off and gives up; deflates back', async (t) => {
    const rec = recordingSleep();
    const { platform, kernel } = await bootGuest({ kind: 'idle', seed: 1, freeFraction: 0.5 }, 4096, { balloon: { sleep: (ms) => rec.sleep(ms) } });
    t.after(() => kernel.halt());
    const g = kernel.guest!;
    const freeBefore = g.os.allocator.freePages;
    const reserve = g.balloon.reservePages;
    assert.ok(freeBefore > 1500, `a half-free guest has ${freeBefore} free pages`);

    // Ask for far less than the guest uses: it can only give what is free (less its reserve).
    platform.xenstore.set('memory/target', String(512 * KIB_PER_PAGE), false);
    await waitUntil(() => g.balloon.counters.canceled === 1);

    const inflated = platform.balloonBatches.filter((b) => b < 0).map((b) => -b);
    assert.ok(inflated.length >= 3, 'several batches');
    assert.ok(inflated.every((n) => n <= BALLOON_BATCH_PAGES), `batches ${inflated}`);
    const total = inflated.reduce((a, b) => a + b, 0);
    assert.equal(total, freeBefore - reserve, 'gave every free page but the reserve');
    assert.equal(g.os.allocator.freePages, reserve);
    assert.equal(platform.populatedCount(), 4096 - total);
    assert.equal(g.balloon.currentPages, 4096 - total);
    // Back-off: EAGAIN retries after 0.5, 1, 2 s (Linux's 2, 4, 8 s scaled by 1/4), then ECANCELED.
    const retries = rec.delays.filter((d) => d < BALLOON_CANCELED_WAIT_MS);
    assert.deepEqual(retries, [500, 1000, 2000]);
    assert.equal(rec.delays[rec.delays.length - 1], BALLOON_CANCELED_WAIT_MS);
    const report = await platform.xenstore.waitFor('data/meminfo_total', (v) => v === String((4096 - total) * KIB_PER_PAGE));
    assert.ok(report);
    assert.equal(await platform.xenstore.waitFor('data/meminfo_free', (v) => v === String(reserve * KIB_PER_PAGE)), String(reserve * KIB_PER_PAGE));

    // Deflate to the full size: every ballooned page comes back, populated and free.
    platform.xenstore.set('memory/target', String(4096 * KIB_PER_PAGE), false);
    await waitUntil(() => g.balloon.currentPages === 4096);
    const deflated = platform.balloonBatches.filter((b) => b > 0);
    assert.ok(deflated.every((n) => n <= BALLOON_BATCH_PAGES));
    assert.equal(deflated.reduce((a, b) => a + b, 0), total);
    assert.equal(platform.populatedCount(), 4096);
    assert.equal(g.os.allocator.freePages, freeBefore);
    assert.equal(g.os.allocator.countFreeBits(), freeBefore);
    assert.equal(g.verifyAll(), 0, 'workload data untouched by ballooning');
  });

  it('moves exactly to a reachable target and backs off while the host has no memory to give', async (t) => {
    const rec = recordingSleep();
    const { platform, kernel } = await bootGuest({ kind: 'kv', seed: 2, freeFraction: 0.6 }, 4096, { balloon: { sleep: (ms) => rec.sleep(ms) } }, { hostFreePages: 0 });
    t.after(() => kernel.halt());
    const g = kernel.guest!;
    platform.xenstore.set('memory/target', String(3000 * KIB_PER_PAGE), false);
    await waitUntil(() => g.balloon.currentPages === 3000 && g.balloon.credit() === 0);
    assert.deepEqual(platform.balloonBatches, [-512, -512, -72]);

    // The host is out of memory now: deflating fails and is retried with back-off.
    platform.hostFreePages = 0;
    platform.xenstore.set('memory/target', String(3600 * KIB_PER_PAGE), false);
    await rec.whenDelay(1000);
    assert.equal(g.balloon.currentPages, 3000);
    assert.equal(platform.populatedCount(), 3000);
    // Memory frees up on the host and the toolstack writes the target again (a new value).
    platform.hostFreePages = 10_000;
    platform.xenstore.set('memory/target', String(3700 * KIB_PER_PAGE), false);
    await waitUntil(() => g.balloon.currentPages === 3700);
    assert.equal(platform.populatedCount(), 3700);
    assert.equal(g.verifyAll(), 0);
  });
});
