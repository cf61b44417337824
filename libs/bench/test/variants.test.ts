import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BENCH_VARIANTS_DEFAULT, parseVariant, parseVariants, VARIANTS_DEFAULT } from '@ferry/bench';

describe('bench variants', () => {
  it('reads a policy with its switches', () => {
    assert.deepEqual(parseVariant('layered+compaction+zero'), { label: 'layered+compaction+zero', policy: 'layered', compaction: true, zeroElision: true });
    assert.deepEqual(parseVariant('xen-4.17'), { label: 'xen-4.17', policy: 'xen-4.17', compaction: false, zeroElision: false });
  });

  it('a "#N" repeat is the same variant under its own label', () => {
    assert.deepEqual(parseVariant('xen-4.17#2'), { label: 'xen-4.17#2', policy: 'xen-4.17', compaction: false, zeroElision: false });
    assert.deepEqual(parseVariant('layered+compaction#3'), { label: 'layered+compaction#3', policy: 'layered', compaction: true, zeroElision: false });
  });

  it('refuses unknown policies, switches and repeats, saying what is accepted', () => {
    for (const bad of ['xen', 'layered+balloon', 'layered+zero+zero', 'xen-4.17#1', 'xen-4.17#0', 'xen-4.17#x', 'xen-4.17#', 'xen-4.17#2#3', '#2']) {
      assert.throws(() => parseVariant(bad), (err: Error) => err instanceof RangeError && err.message.includes(`"${bad}"`) && err.message.includes('#2'), bad);
    }
  });

  it('a list names each variant once and points at "#2" for a repeat', () => {
    assert.deepEqual(
      parseVariants('xen-4.17,xen-4.17#2').map((v) => v.label),
      ['xen-4.17', 'xen-4.17#2'],
    );
    assert.throws(() => parseVariants('xen-4.17,layered,xen-4.17'), /"xen-4.17" is listed twice; to run it again, add "xen-4.17#2"/);
  });

  it('the bench default is the ablation plus the A/A control; the simulator, being deterministic, has none', () => {
    assert.deepEqual(BENCH_VARIANTS_DEFAULT, [...VARIANTS_DEFAULT, 'xen-4.17#2']);
    assert.ok(!VARIANTS_DEFAULT.some((v) => v.includes('#')));
    for (const v of BENCH_VARIANTS_DEFAULT) parseVariant(v);
  });
});
