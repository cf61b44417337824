import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTROL, GuestFault, PhysMem } from '../src';
import { TestPlatform } from './support/test-platform';

function dirtyPfns(p: TestPlatform): number[] {
  return p.logDirtyClean();
}

describe('PhysMem', () => {
  it('reads back words, 64-bit counters and bytes', () => {
    const p = new TestPlatform(64);
    const mem = new PhysMem(p.backing);
    mem.write32(3, 7, -5);
    assert.equal(mem.read32(3, 7), -5);
    assert.equal(mem.readU32(3, 7), 0xfffffffb);
    mem.write64(3, 10, 2 ** 40 + 12345);
    assert.equal(mem.read64(3, 10), 2 ** 40 + 12345);
    assert.equal(mem.add64(3, 10, 1), 2 ** 40 + 12346);
    const src = new Uint8Array([1, 2, 3, 250]);
    mem.writeBytes(5, 4090, src, 0, 4);
    const dst = new Uint8Array(4);
    mem.readBytes(5, 4090, dst, 0, 4);
    assert.deepEqual([...dst], [1, 2, 3, 250]);
    assert.equal(mem.read8(5, 4093), 250);
    const sum = mem.fillWords(6, 0, 1024, 99);
    assert.equal(mem.checksumWords(6, 0, 1024), sum);
    mem.copyPage(7, 6);
    assert.equal(mem.checksumWords(7, 0, 1024), sum);
  });

  it('marks written pages dirty only while log-dirty is on, and counts first writes as faults', () => {
    const p = new TestPlatform(256);
    const mem = new PhysMem(p.backing);
    mem.write32(10, 0, 1);
    mem.writeBytes(11, 0, new Uint8Array([1]), 0, 1);
    assert.deepEqual(dirtyPfns(p), [], 'nothing is logged while log-dirty is off');

    p.logDirtyEnable();
    mem.write32(10, 0, 2);
    mem.write32(10, 1, 3); // same page again: no new fault
    mem.add32(40, 5, 1);
    mem.write8(200, 17, 9);
    mem.fillWords(255, 0, 8, 1);
    const x = mem.read32(100, 0) + mem.read64(101, 0); // reads never dirty
    assert.equal(x, 0);
    assert.equal(Atomics.load(p.backing.control, CONTROL.FAULT_COUNT), 4, "one fault per page made dirty");
    assert.deepEqual(dirtyPfns(p), [10, 40, 200, 255]);
    assert.deepEqual(dirtyPfns(p), [], 'CLEAN reset the bitmap');

    mem.write32(10, 0, 4);
    assert.deepEqual(dirtyPfns(p), [10], 'a page written after CLEAN is dirty again');

    p.logDirtyDisable();
    mem.write32(12, 0, 1);
    assert.deepEqual(dirtyPfns(p), []);
  });

  it('faults on unpopulated and out-of-range pfns and on accesses that cross a page', () => {
    const p = new TestPlatform(64);
    const mem = new PhysMem(p.backing);
    p.setPopulated(9, false);
    assert.throws(() => mem.read32(9, 0), GuestFault);
    assert.throws(() => mem.write32(9, 0, 1), /not populated/);
    assert.throws(() => mem.read32(64, 0), /outside guest memory/);
    assert.throws(() => mem.read32(-1, 0), GuestFault);
    assert.throws(() => mem.writeBytes(8, 4094, new Uint8Array(4), 0, 4), /crosses the end/);
    p.setPopulated(9, true);
    assert.equal(mem.read32(9, 0), 0);
  });

  it('addresses RAM in windows of 2^18 pages', () => {
    // Two windows: the second starts at pfn 262144. ArrayBuffers of untouched memory are cheap.
    const p = new TestPlatform((1 << 18) + 8);
    const mem = new PhysMem(p.backing);
    assert.equal(p.backing.ram.length, 2);
    mem.write32((1 << 18) + 3, 5, 77);
    mem.write32((1 << 18) - 1, 1023, 66);
    assert.equal(new Int32Array(p.backing.ram[1])[3 * 1024 + 5], 77);
    assert.equal(new Int32Array(p.backing.ram[0])[((1 << 18) - 1) * 1024 + 1023], 66);
    assert.equal(mem.read32((1 << 18) + 3, 5), 77);
  });
});
