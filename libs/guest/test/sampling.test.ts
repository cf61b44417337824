import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Popularity } from '../src/popularity';
import { Prng } from '../src/prng';
import { TokenBucket } from '../src/token-bucket';
import { ZipfSampler } from '../src/zipf';

function prng(seed: number): Prng {
  const regs = new Uint32Array(4);
  Prng.seed(regs, 0, seed);
  return new Prng(regs);
}

describe('Prng', () => {
  it('is deterministic per seed and lives in its registers', () => {
    const a = prng(7);
    const b = prng(7);
    const c = prng(8);
    const xs = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
    assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.next()));
    const regs = new Uint32Array(4);
    Prng.seed(regs, 0, 9);
    const p = new Prng(regs);
    p.next();
    const copy = new Prng(regs.slice());
    assert.equal(p.next(), copy.next(), 'copied registers continue the same stream');
  });
});

describe('ZipfSampler', () => {
  for (const s of [0.5, 0.99, 1, 1.4]) {
    it(`draws ranks in 1..n with the Zipf(${s}) shape`, () => {
      const n = 1000;
      const z = new ZipfSampler(n, s);
      const rng = prng(3);
      const counts = new Float64Array(n + 1);
      const draws = 200_000;
      for (let i = 0; i < draws; i++) {
        const k = z.sample(rng);
        assert.ok(k >= 1 && k <= n);
        counts[k]++;
      }
      let norm = 0;
      for (let k = 1; k <= n; k++) norm += k ** -s;
      // Expected share of ranks 1, 2, 10 within 10% (200k draws: well inside that at a fixed seed).
      for (const k of [1, 2, 10]) {
        const expected = (k ** -s / norm) * draws;
        assert.ok(Math.abs(counts[k] - expected) < 0.1 * expected, `rank ${k}: ${counts[k]} vs ${expected.toFixed(0)}`);
      }
    });
  }
});

describe('Popularity', () => {
  it('sends the hot share of picks into a hot run that moves with the phase', () => {
    const pop = new Popularity({ items: 10_000, hotFraction: 0.02, zipfS: 0.99, hotShare: 0.83 });
    assert.equal(pop.hotItems, 200);
    const rng = prng(5);
    for (const phase of [0, 1, 7]) {
      const start = pop.hotStart(phase);
      let hot = 0;
      for (let i = 0; i < 50_000; i++) {
        const x = pop.pick(rng, phase);
        assert.ok(x >= 0 && x < 10_000);
        if ((x - start + 10_000) % 10_000 < 200) hot++;
      }
      // 83% hot plus 2% of the 17% uniform ones.
      assert.ok(Math.abs(hot / 50_000 - 0.8334) < 0.02, `phase ${phase}: hot share ${hot / 50_000}`);
    }
    assert.notEqual(pop.hotStart(1), pop.hotStart(0));
  });
});

describe('TokenBucket', () => {
  it('lets through rate × elapsed operations, at most a burst at once', () => {
    const b = new TokenBucket(100, 5, 0);
    assert.equal(b.take(0, 1000), 0);
    assert.equal(b.msUntilNext(0), 10);
    assert.equal(b.take(30, 1000), 3);
    assert.equal(b.take(1000, 1000), 5, 'capped by the burst');
    assert.equal(b.take(1000, 1000), 0);
    assert.equal(b.take(1025, 2), 2, 'capped by max');
  });
});
