import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, medianInterval, seedMedians, type BenchRun } from '@ferry/bench';

function run(workload: 'kv' | 'web', variant: string, seed: number, fig: { bytes: number; total: number; down: number; ratioDown?: number }, outcome = 'succeeded'): BenchRun {
  return {
    workload,
    variant,
    seed,
    outcome,
    bytes_sent: fig.bytes,
    total_ms: fig.total,
    downtime_ms: fig.down,
    ratio_downtime: fig.ratioDown,
  } as BenchRun;
}

describe('medians over seeds', () => {
  it('median of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('pairs ratios by seed and leaves failed runs out', () => {
    const runs = [
      run('kv', 'xen-4.17', 1, { bytes: 100, total: 10, down: 50, ratioDown: 1 }),
      run('kv', 'layered', 1, { bytes: 60, total: 6, down: 40, ratioDown: 0.8 }),
      run('kv', 'xen-4.17', 2, { bytes: 100, total: 10, down: 200, ratioDown: 1 }),
      run('kv', 'layered', 2, { bytes: 60, total: 6, down: 220, ratioDown: 1.1 }),
      run('kv', 'xen-4.17', 3, { bytes: 100, total: 10, down: 60, ratioDown: 1 }),
      run('kv', 'layered', 3, { bytes: 60, total: 6, down: 54, ratioDown: 0.9 }),
      run('kv', 'layered', 4, { bytes: 1, total: 1, down: 1 }, 'failed'),
      run('web', 'layered', 1, { bytes: 5, total: 5, down: 5 }),
    ];
    const rows = seedMedians(runs);
    assert.deepEqual(
      rows.map((r) => [r.workload, r.variant, r.seeds]),
      [
        ['kv', 'xen-4.17', 3],
        ['kv', 'layered', 3],
        ['web', 'layered', 1],
      ],
    );
    const layered = rows[1];
    assert.equal(layered.downtime_ms, 54);
    // The median of the paired ratios (0.8, 1.1, 0.9), not the ratio of the medians (54 / 60).
    assert.equal(layered.ratio_downtime, 0.9);
    assert.equal(rows[2].ratio_downtime, undefined, 'no baseline, no ratio');
  });

  it('gives the downtime ratio an interval from three seeds on, the same every time', () => {
    const ratios = [0.8, 1.1, 0.9, 0.95, 1.3, 0.7, 1.0];
    const interval = medianInterval(ratios)!;
    assert.deepEqual(medianInterval(ratios), interval, 'deterministic');
    const [low, high] = interval;
    assert.ok(low <= median(ratios) && median(ratios) <= high, `${low}–${high} holds the median`);
    assert.ok(low >= 0.7 && high <= 1.3, 'within the values');
    assert.ok(low < high, 'values that differ leave room');
    assert.deepEqual(medianInterval([0.9, 0.9, 0.9, 0.9]), [0.9, 0.9], 'no spread, no room');
    assert.equal(medianInterval([0.8, 1.2]), undefined, 'two seeds say too little');
    // More seeds of the same spread narrow it.
    const many = Array.from({ length: 10 }, () => ratios).flat();
    const [lowMany, highMany] = medianInterval(many)!;
    assert.ok(highMany - lowMany < high - low, `${lowMany}–${highMany} is narrower than ${low}–${high}`);
  });

  it('puts the interval on each variant with enough seeds', () => {
    const runs = [1, 2, 3].flatMap((seed) => [
      run('kv', 'xen-4.17', seed, { bytes: 100, total: 10, down: 20, ratioDown: 1 }),
      run('kv', 'layered', seed, { bytes: 60, total: 6, down: 18, ratioDown: [0.8, 0.9, 1.0][seed - 1] }),
    ]);
    const [xen, layered] = seedMedians(runs);
    assert.deepEqual(xen.ratio_downtime_interval, [1, 1]);
    const [low, high] = layered.ratio_downtime_interval!;
    assert.ok(low >= 0.8 && high <= 1.0 && low <= 0.9 && 0.9 <= high);
  });
});
