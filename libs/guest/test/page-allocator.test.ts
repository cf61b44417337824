import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BalloonList, GuestFault, PageAllocator, PhysMem, planKernelLayout } from '../src';
import { Prng } from '../src/prng';
import { TestPlatform } from './support/test-platform';

function setup(maxPages: number, unpopulated: number[] = []) {
  const p = new TestPlatform(maxPages);
  for (const pfn of unpopulated) p.setPopulated(pfn, false);
  const mem = new PhysMem(p.backing);
  const layout = planKernelLayout(maxPages);
  const alloc = new PageAllocator(mem, layout);
  alloc.format();
  return { p, mem, layout, alloc };
}

describe('PageAllocator', () => {
  it('starts with every populated page above the kernel free', () => {
    const { layout, alloc } = setup(5000, [4000, 4001]);
    assert.equal(layout.bitmapPages, 1);
    assert.equal(alloc.freePages, 5000 - layout.reservedEnd - 2);
    assert.equal(alloc.countFreeBits(), alloc.freePages);
    assert.equal(alloc.isFree(4000), false);
    assert.equal(alloc.isFree(layout.reservedEnd - 1), false, 'kernel pages are never free');
  });

  it('keeps its invariants through random alloc/free churn', () => {
    const { layout, alloc } = setup(3000);
    const managed = 3000 - layout.reservedEnd;
    const held = new Set<number>();
    const regs = new Uint32Array(4);
    Prng.seed(regs, 0, 42);
    const prng = new Prng(regs);
    for (let i = 0; i < 20000; i++) {
      if (held.size > 0 && (prng.nextFloat() < 0.45 || alloc.freePages === 0)) {
        const victims = [...held];
        const pfn = victims[prng.nextInt(victims.length)];
        held.delete(pfn);
        alloc.free(pfn);
      } else {
        const pfn = alloc.alloc();
        assert.ok(pfn >= layout.reservedEnd && pfn < 3000, `pfn ${pfn} in range`);
        assert.ok(!held.has(pfn), `pfn ${pfn} handed out twice`);
        held.add(pfn);
      }
      assert.equal(alloc.freePages + held.size, managed);
    }
    assert.equal(alloc.countFreeBits(), alloc.freePages);
    for (const pfn of held) assert.equal(alloc.isFree(pfn), false);
  });

  it('runs dry, then refuses; double frees and foreign pfns are guest bugs', () => {
    const { layout, alloc } = setup(600);
    const got: number[] = [];
    for (;;) {
      const pfn = alloc.alloc();
      if (pfn < 0) break;
      got.push(pfn);
    }
    assert.equal(got.length, 600 - layout.reservedEnd);
    assert.equal(alloc.freePages, 0);
    alloc.free(got[5]);
    assert.throws(() => alloc.free(got[5]), /double free/);
    assert.throws(() => alloc.free(0), GuestFault);
    assert.equal(alloc.alloc(), got[5]);
  });

  it('keeps its state in guest memory: a second allocator over the same memory continues', () => {
    const { mem, layout, alloc } = setup(2000);
    const a = [alloc.alloc(), alloc.alloc(), alloc.alloc()];
    const again = new PageAllocator(mem, layout);
    assert.equal(again.freePages, alloc.freePages);
    const next = again.alloc();
    assert.ok(!a.includes(next));
    again.free(a[1]);
    assert.equal(alloc.isFree(a[1]), true);
  });
});

describe('BalloonList', () => {
  it('is a stack of pfns in guest memory', () => {
    const { mem, layout } = setup(3000);
    const list = new BalloonList(mem, layout);
    list.format();
    for (let i = 0; i < 1500; i++) list.push(1000 + i);
    assert.equal(list.length, 1500);
    assert.equal(new BalloonList(mem, layout).at(1024), 2024);
    assert.equal(list.pop(), 2499);
    assert.equal(list.length, 1499);
  });
});
