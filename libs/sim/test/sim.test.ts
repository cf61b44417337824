import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelTrace, RecordedTrace, simulate, workloadModel, type RecordedTraceFile } from '../src';

const kv = () => new ModelTrace(workloadModel('kv', { memoryBytes: 64 * 1024 * 1024, freeFraction: 0.5, seed: 7 }));

test('the same inputs always give the same output', async () => {
  const a = await simulate({ trace: kv(), policy: 'layered', compaction: true });
  const b = await simulate({ trace: kv(), policy: 'layered', compaction: true });
  assert.deepEqual(a, b);
  const c = await simulate({ trace: new ModelTrace(workloadModel('kv', { memoryBytes: 64 * 1024 * 1024, freeFraction: 0.5, seed: 8 })), policy: 'layered', compaction: true });
  assert.notDeepEqual(a.rounds.map((r) => r.pagesSent), c.rounds.map((r) => r.pagesSent));
});

test('compaction takes free pages out of round 0 and never out of what the guest writes', async () => {
  const trace = kv();
  const plain = await simulate({ trace, policy: 'xen-4.17', compaction: false });
  const compact = await simulate({ trace, policy: 'xen-4.17', compaction: true });
  assert.equal(plain.rounds[0].pagesSent, trace.pages);
  assert.equal(compact.rounds[0].pagesSent, trace.pages - compact.balloonReleasedPages);
  assert.ok(compact.balloonReleasedPages > trace.pages * 0.4, `released ${compact.balloonReleasedPages}`);
  assert.ok(compact.bytesSent < plain.bytesSent);
});

test('xen-4.17 stops after 5 live iterations on a busy guest; layered holds its hot pages', async () => {
  const trace = kv();
  const xen = await simulate({ trace, policy: 'xen-4.17', compaction: false });
  assert.equal(xen.liveRounds, 5);
  const layered = await simulate({ trace, policy: 'layered', compaction: false });
  assert.ok(layered.rounds.some((r) => r.held > 0), 'some pages were held back');
  assert.ok(layered.deferredPages > 0);
});

test('a recorded trace replays its bitmaps, wrapping around', () => {
  const frame = (pfns: number[]) => {
    const b = new Uint8Array(2);
    for (const p of pfns) b[p >> 3] |= 1 << (p & 7);
    return Buffer.from(b).toString('base64');
  };
  const file: RecordedTraceFile = {
    format: 'ferry-dirty-trace/v1',
    workload: 'test',
    pages: 16,
    p2m: Buffer.from([0xff, 0xff]).toString('base64'),
    freePages: 4,
    intervalMs: 100,
    bitmaps: [frame([1]), frame([2, 3])],
  };
  const t = new RecordedTrace(file);
  assert.deepEqual([...t.dirtiedBetween(0, 100)], [0b10, 0]);
  assert.deepEqual([...t.dirtiedBetween(0, 200)], [0b1110, 0]);
  assert.deepEqual([...t.dirtiedBetween(200, 300)], [0b10, 0]); // wraps
  assert.throws(() => new RecordedTrace({ ...file, format: 'nope' as never }), /not a ferry dirty trace/);
});
