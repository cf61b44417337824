import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runOrder } from '@ferry/bench';

describe('bench run order', () => {
  it('the first seed runs the variants as given', () => {
    assert.deepEqual(runOrder(['a', 'b', 'c'], 0), ['a', 'b', 'c']);
  });

  it('rotates by one per seed, so every variant takes every position', () => {
    const variants = ['a', 'b', 'c'];
    const orders = [0, 1, 2].map((i) => runOrder(variants, i));
    assert.deepEqual(orders, [
      ['a', 'b', 'c'],
      ['b', 'c', 'a'],
      ['c', 'a', 'b'],
    ]);
    for (let position = 0; position < variants.length; position++) {
      assert.deepEqual(new Set(orders.map((o) => o[position])), new Set(variants));
    }
    assert.deepEqual(runOrder(variants, 3), variants);
  });

  it('leaves the input alone and handles an empty list', () => {
    const variants = ['a', 'b'];
    runOrder(variants, 1);
    assert.deepEqual(variants, ['a', 'b']);
    assert.deepEqual(runOrder([], 5), []);
  });
});
