import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DirtyPageClassifier,
  compactionTarget,
  layeredPolicy,
  runPrecopy,
  xen417Policy,
  xenLegacyPolicy,
  type PrecopyExecutor,
  type PrecopyPolicy,
} from '../src';

const PAGES = 4096;

function bitmapOf(pfns: Iterable<number>, pages = PAGES): Uint8Array {
  const b = new Uint8Array(Math.ceil(pages / 8));
  for (const p of pfns) b[p >> 3] |= 1 << (p & 7);
  return b;
}

function count(b: Uint8Array): number {
  let n = 0;
  for (const byte of b) for (let i = 0; i < 8; i++) n += (byte >> i) & 1;
  return n;
}

/**
 * A deterministic executor: `dirtyAfterRound(r)` says which pages the guest dirties while round r
 * is being sent; every page costs 1 ms; the classifier decides what is sent.
 */
function scriptedExecutor(policy: PrecopyPolicy, dirtyAfterRound: (round: number) => number[]) {
  const classifier = new DirtyPageClassifier(PAGES, policy.holdsJitteryPages);
  let pendingDirty: Uint8Array = new Uint8Array(PAGES / 8);
  let sendSet: Uint8Array = new Uint8Array(PAGES / 8);
  const sentPerRound: number[] = [];
  let suspended = false;
  const executor: PrecopyExecutor = {
    async prepareRound(round, final) {
      assert.equal(final, suspended, 'FINAL exactly when suspended');
      const c = round === 0 ? classifier.firstRound(bitmapOf(Array.from({ length: PAGES }, (_, i) => i))) : classifier.classify(pendingDirty, final);
      const dirtyCount = round === 0 ? PAGES : count(pendingDirty);
      pendingDirty = new Uint8Array(PAGES / 8);
      sendSet = c.sendSet;
      return { dirtyCount, faultCount: 0, pagesToSend: c.pagesToSend, held: c.held, released: c.released };
    },
    async sendRound(round) {
      classifier.markSent(sendSet);
      const n = count(sendSet);
      sentPerRound.push(n);
      if (!suspended) for (const p of dirtyAfterRound(round)) pendingDirty[p >> 3] |= 1 << (p & 7);
      return { pagesSent: n, pagesSkipped: 0, zeroPages: 0, bytes: n * 4104, elapsedMs: n };
    },
    async suspend() {
      suspended = true;
    },
  };
  return { executor, sentPerRound, classifier };
}

test('xen-4.17: 5 live iterations then stop-and-copy when the guest keeps dirtying', async () => {
  const policy = xen417Policy();
  const { executor, sentPerRound } = scriptedExecutor(policy, () => Array.from({ length: 300 }, (_, i) => i));
  const out = await runPrecopy(executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.equal(out.stopReason, 'max-iterations');
  assert.equal(out.liveRounds, 5);
  assert.deepEqual(sentPerRound, [PAGES, 300, 300, 300, 300, 300]);
  assert.equal(out.rounds.at(-1)?.final, true);
});

test('xen-4.17: fewer than 50 dirty pages still sends them live, then stops (Xen quirk)', async () => {
  const policy = xen417Policy();
  const { executor, sentPerRound } = scriptedExecutor(policy, (r) => (r === 0 ? [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] : [42]));
  const out = await runPrecopy(executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.equal(out.stopReason, 'dirty-below-threshold');
  // round 0, round 1 (10 pages, sent live despite the stop), final (the 1 page dirtied meanwhile)
  assert.deepEqual(sentPerRound, [PAGES, 10, 1]);
});

test('xen-legacy: stops when a round sent plus skipped fewer than 50, or at the 3x cap', async () => {
  const policy = xenLegacyPolicy();
  const quiet = scriptedExecutor(policy, (r) => (r < 3 ? Array.from({ length: 100 }, (_, i) => i) : [7]));
  const out = await runPrecopy(quiet.executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.equal(out.stopReason, 'sent-plus-skipped-below-threshold');
  assert.deepEqual(quiet.sentPerRound, [PAGES, 100, 100, 100, 1, 1]);

  const busy = scriptedExecutor(policy, () => Array.from({ length: PAGES }, (_, i) => i));
  const capped = await runPrecopy(busy.executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.equal(capped.stopReason, 'total-sent-cap');
  assert.equal(capped.liveRounds, 4); // 4 full rounds exceed 3x the p2m
});

test('classifier: a page dirtied in D of the last W rounds is held, released after it calms down', () => {
  const c = new DirtyPageClassifier(64, true, { window: 4, threshold: 2, demoteAfter: 2 });
  let s = c.firstRound(bitmapOf([0, 1, 2, 3], 64));
  c.markSent(s.sendSet);
  s = c.classify(bitmapOf([1], 64)); // page 1 dirtied once: warm, sent
  assert.deepEqual([s.pagesToSend, s.held], [1, 0]);
  c.markSent(s.sendSet);
  s = c.classify(bitmapOf([1], 64)); // twice in the window: jittery, held
  assert.deepEqual([s.pagesToSend, s.held, s.layers.hot], [0, 1, 1]);
  c.markSent(s.sendSet);
  s = c.classify(bitmapOf([], 64)); // clean once: still held (demoteAfter = 2)
  assert.deepEqual([s.pagesToSend, s.held], [0, 1]);
  c.markSent(s.sendSet);
  s = c.classify(bitmapOf([], 64)); // clean twice: demoted and sent
  assert.deepEqual([s.pagesToSend, s.held, s.released], [1, 0, 1]);
  c.markSent(s.sendSet);
  assert.equal(c.unsentCount(), 0);
});

test('classifier: the final round sends every unsent page, held or left over', () => {
  const c = new DirtyPageClassifier(64, true, { window: 2, threshold: 2, demoteAfter: 1 });
  c.markSent(c.firstRound(bitmapOf([0, 1, 2], 64)).sendSet);
  c.markSent(c.classify(bitmapOf([5], 64)).sendSet);
  const hold = c.classify(bitmapOf([5, 6], 64)); // 5 jittery (held), 6 sent... but we do not send it
  assert.deepEqual([hold.held, hold.pagesToSend], [1, 1]);
  const fin = c.classify(bitmapOf([9], 64), true);
  assert.deepEqual(count(fin.sendSet), 3); // 5 (held), 6 (prepared, never sent), 9 (final CLEAN)
  assert.equal(fin.held, 0);
});

test('layered: holds a hot set back and stops by its own rule on a guest that never converges', async () => {
  const policy = layeredPolicy({ downtimeTargetMs: 50 });
  const hot = Array.from({ length: 400 }, (_, i) => i);
  const { executor, sentPerRound } = scriptedExecutor(policy, () => hot);
  const out = await runPrecopy(executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.notEqual(out.stopReason, 'max-iterations');
  assert.ok(out.liveRounds < 29);
  // After the first resend the hot set is held, so live rounds stop resending it.
  assert.ok(sentPerRound.slice(3, -1).every((n) => n === 0), `sent per round ${sentPerRound}`);
  assert.equal(sentPerRound.at(-1), 400);
});

test('layered: a calm guest converges and stops when the remainder fits the downtime target', async () => {
  const policy = layeredPolicy({ downtimeTargetMs: 1000 });
  const { executor } = scriptedExecutor(policy, (r) => (r < 2 ? Array.from({ length: 200 }, (_, i) => 1000 + i) : [3, 4]));
  const out = await runPrecopy(executor, policy, { domainPages: PAGES, p2mSize: PAGES });
  assert.ok(['dirty-below-threshold', 'downtime-target-met'].includes(out.stopReason), out.stopReason);
});

test('compaction target: used memory plus headroom, never above the current target, floor respected', () => {
  assert.deepEqual(compactionTarget({ populatedPages: 65536, freePages: 32768, targetPages: 65536 }), {
    targetPages: 36045,
    expectedReleasePages: 65536 - 36045,
  });
  assert.equal(compactionTarget({ populatedPages: 8192, freePages: 8000, targetPages: 8192 }).targetPages, 4096);
  assert.equal(compactionTarget({ populatedPages: 65536, freePages: 0, targetPages: 65536 }).skipReason, 'no-free-memory');
});
