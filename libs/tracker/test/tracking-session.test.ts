// Round bookkeeping of one tracking session, over a scripted hypervisor (pure logic: the real
// emulated host is exercised in memory-tracker.test.ts).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bitmapPfns, bitmapSet, type DirtyBitmap, type DomainInfo, type HypervisorDriver } from '@ferry/hypervisor';
import { DEFAULT_LAYERED_PARAMS } from '@ferry/policy';
import { FerryError } from '@ferry/runtime';
import { resolveTrackingConfig, TrackingSession } from '@ferry/tracker';
import { status } from '@grpc/grpc-js';

const PAGES = 64;

/** A hypervisor whose CLEANs return the dirty pages queued by the test, in order. */
class ScriptedHypervisor {
  readonly cleans: { final: boolean }[] = [];
  private readonly queued: number[][] = [];
  populated = Array.from({ length: 48 }, (_, i) => i);

  dirtyNext(pfns: number[]): void {
    this.queued.push(pfns);
  }

  asDriver(): HypervisorDriver {
    const driver: Partial<HypervisorDriver> = {
      p2m: async () => bitmapOf(this.populated),
      domainInfo: async () => ({ nrPages: this.populated.length, maxPages: PAGES }) as DomainInfo,
      logDirtyClean: async (_domid, opts) => {
        this.cleans.push({ final: opts?.final === true });
        const pfns = this.queued.shift() ?? [];
        return { bitmap: bitmapOf(pfns), stats: { dirtyCount: pfns.length, faultCount: pfns.length } } satisfies DirtyBitmap;
      },
    };
    return driver as HypervisorDriver;
  }
}

function bitmapOf(pfns: number[]): Uint8Array {
  const b = new Uint8Array(PAGES / 8);
  for (const p of pfns) bitmapSet(b, p);
  return b;
}

function session(hv: ScriptedHypervisor, policy: 'xen-4.17' | 'xen-legacy' | 'layered' = 'xen-4.17') {
  return new TrackingSession(hv.asDriver(), 'm1', 7, PAGES, hv.populated.length, resolveTrackingConfig({ policy }), 1n);
}

async function rejects(p: Promise<unknown> | (() => unknown), code: status, reason: string): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (err: unknown) => {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.reason, reason);
    return true;
  });
}

describe('TrackingSession', () => {
  it('round 0 takes every populated page without a CLEAN', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv);
    const c = await s.prepareRound(0, false);
    assert.equal(c.dirtyCount, 48);
    assert.equal(c.pagesToSend, 48);
    assert.equal(c.populatedPages, 48);
    assert.equal(hv.cleans.length, 0);
    assert.deepEqual(bitmapPfns(s.takeSendSet(0).bitmap), hv.populated);
  });

  it('later rounds send what the CLEAN found dirty; a retry returns the same counts without a CLEAN', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv);
    await s.prepareRound(0, false);
    s.takeSendSet(0);
    hv.dirtyNext([3, 9, 40]);
    const first = await s.prepareRound(1, false);
    assert.equal(first.dirtyCount, 3);
    assert.equal(first.pagesToSend, 3);
    const retry = await s.prepareRound(1, false);
    assert.deepEqual(retry, first);
    assert.equal(hv.cleans.length, 1);
    const set = s.takeSendSet(1);
    assert.deepEqual(bitmapPfns(set.bitmap), [3, 9, 40]);
    assert.equal(set.final, false);
    assert.equal(set.skipRedirtiedPages, false);
    // Taking again is idempotent: same set.
    assert.deepEqual(bitmapPfns(s.takeSendSet(1).bitmap), [3, 9, 40]);
  });

  it('refuses rounds out of order and anything after the final round', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv);
    await rejects(s.prepareRound(1, false), status.FAILED_PRECONDITION, 'ROUND_OUT_OF_ORDER');
    await s.prepareRound(0, false);
    await rejects(s.prepareRound(2, false), status.FAILED_PRECONDITION, 'ROUND_OUT_OF_ORDER');
    await s.prepareRound(1, true);
    assert.deepEqual(hv.cleans, [{ final: true }]);
    await rejects(s.prepareRound(2, false), status.FAILED_PRECONDITION, 'TRACKING_FINISHED');
    await rejects(s.prepareRound(1, false), status.FAILED_PRECONDITION, 'ROUND_ALREADY_FINAL');
    await rejects(() => s.takeSendSet(0), status.NOT_FOUND, 'ROUND_NOT_PREPARED');
  });

  it('a round upgraded to final sends its unsent pages plus the final CLEAN, and sums the dirty counts', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv);
    await s.prepareRound(0, false);
    s.takeSendSet(0);
    hv.dirtyNext([1, 2, 3]);
    await s.prepareRound(1, false); // runPrecopy stops here without sending round 1
    hv.dirtyNext([3, 5]);
    const final = await s.prepareRound(1, true);
    assert.equal(final.final, true);
    assert.equal(final.dirtyCount, 5);
    assert.equal(final.pagesToSend, 4);
    assert.equal(final.pagesDeferred, 0);
    assert.deepEqual(bitmapPfns(s.takeSendSet(1).bitmap), [1, 2, 3, 5]);
    assert.deepEqual(hv.cleans, [{ final: false }, { final: true }]);
  });

  it('a round the streamer took before the upgrade is sent again in full', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv);
    await s.prepareRound(0, false);
    s.takeSendSet(0);
    hv.dirtyNext([10, 11]);
    await s.prepareRound(1, false);
    s.takeSendSet(1); // taken, but the coordinator never saw the round delivered
    hv.dirtyNext([12]);
    const final = await s.prepareRound(1, true);
    assert.equal(final.pagesToSend, 3);
    assert.deepEqual(bitmapPfns(s.takeSendSet(1).bitmap), [10, 11, 12]);
  });

  it('layered holds a jittery page back and sends it in the final round', async () => {
    const hv = new ScriptedHypervisor();
    const s = new TrackingSession(
      hv.asDriver(),
      'm1',
      7,
      PAGES,
      48,
      resolveTrackingConfig({ policy: 'layered', layered: { window: 4, threshold: 2, demoteAfter: 2 } }),
      1n,
    );
    await s.prepareRound(0, false);
    s.takeSendSet(0);
    hv.dirtyNext([4, 20]);
    assert.equal((await s.prepareRound(1, false)).pagesToSend, 2);
    s.takeSendSet(1);
    hv.dirtyNext([4]); // dirtied twice in the window: jittery
    const r2 = await s.prepareRound(2, false);
    assert.equal(r2.pagesToSend, 0);
    assert.equal(r2.pagesDeferred, 1);
    assert.equal(r2.layers.hot, 1);
    s.takeSendSet(2);
    hv.dirtyNext([]);
    const final = await s.prepareRound(3, true);
    assert.deepEqual(bitmapPfns(s.takeSendSet(3).bitmap), [4]);
    assert.equal(final.pagesDeferred, 0);
  });

  it('xen-legacy asks the streamer to skip re-dirtied pages, except in the final round', async () => {
    const hv = new ScriptedHypervisor();
    const s = session(hv, 'xen-legacy');
    await s.prepareRound(0, false);
    assert.equal(s.takeSendSet(0).skipRedirtiedPages, true);
    await s.prepareRound(1, true);
    assert.equal(s.takeSendSet(1).skipRedirtiedPages, false);
  });
});

describe('resolveTrackingConfig', () => {
  it('holds jittery pages for layered only, with defaults for zero parameters', () => {
    const layered = resolveTrackingConfig({ policy: 'layered', layered: { window: 0, threshold: 2, demoteAfter: 0 } });
    assert.equal(layered.holdJitteryPages, true);
    assert.deepEqual(layered.layered, { window: DEFAULT_LAYERED_PARAMS.window, threshold: 2, demoteAfter: DEFAULT_LAYERED_PARAMS.demoteAfter });
    assert.equal(resolveTrackingConfig({ policy: 'xen-4.17' }).holdJitteryPages, false);
    assert.equal(resolveTrackingConfig({ policy: 'xen-legacy' }).skipRedirtiedPages, true);
  });

  it('refuses impossible layered parameters with INVALID_ARGUMENT', async () => {
    await rejects(() => resolveTrackingConfig({ policy: 'layered', layered: { window: 9 } }), status.INVALID_ARGUMENT, 'BAD_LAYERED_PARAMETERS');
    await rejects(() => resolveTrackingConfig({ policy: 'layered', layered: { window: 2, threshold: 3 } }), status.INVALID_ARGUMENT, 'BAD_LAYERED_PARAMETERS');
  });
});
