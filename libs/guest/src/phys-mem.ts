// Guest-physical memory: the guest's view of its RAM through the MemoryBacking the host shares.
//
// Every store goes through here, so this is the page path's hottest code. Rules it keeps:
//  - no allocation per access: window views are built once, addresses are (pfn, offset) pairs;
//  - an access to a pfn that is not populated (ballooned, or never sent by a migration) is a guest
//    fault: GuestFault is thrown and the kernel crashes the domain;
//  - while log-dirty is on, a store marks its page in the dirty bitset AFTER the data is written.
//    The host's CLEAN takes bitset words with Atomics.exchange: if it took our bit, our data store
//    happened before (it is sequenced before our Atomics op), so the page it then reads has the
//    data; if it did not, the bit stays set for the next round. Marking first could lose a store.
//    We test the bit with Atomics.load first and only pay for Atomics.or on a clean page (the
//    first store since a CLEAN, which is also what Xen counts as a fault).

import { CONTROL, PAGE_SIZE, WINDOW_PAGES, WORDS_PER_PAGE, type MemoryBacking } from './platform';

const WINDOW_SHIFT = 18; // log2(WINDOW_PAGES)
const WINDOW_MASK = WINDOW_PAGES - 1;
const WORD_SHIFT = 10; // log2(WORDS_PER_PAGE)
const BYTE_SHIFT = 12; // log2(PAGE_SIZE)

/** A guest access the hardware would refuse: the domain crashes. */
export class GuestFault extends Error {
  constructor(
    readonly pfn: number,
    message: string,
  ) {
    super(message);
    this.name = 'GuestFault';
  }
}

export class PhysMem {
  readonly maxPages: number;
  private readonly words: Int32Array[];
  private readonly bytes: Uint8Array[];
  private readonly p2m: Int32Array;
  private readonly dirty: Int32Array;
  private readonly control: Int32Array;

  constructor(readonly backing: MemoryBacking) {
    this.maxPages = backing.maxPages;
    const windows = Math.ceil(backing.maxPages / WINDOW_PAGES);
    if (backing.ram.length < windows) {
      throw new Error(`memory backing has ${backing.ram.length} RAM windows, ${windows} needed for ${backing.maxPages} pages`);
    }
    this.words = [];
    this.bytes = [];
    for (let w = 0; w < windows; w++) {
      const pagesHere = Math.min(WINDOW_PAGES, backing.maxPages - w * WINDOW_PAGES);
      const buf = backing.ram[w];
      if (buf.byteLength < pagesHere * PAGE_SIZE) {
        throw new Error(`RAM window ${w} holds ${buf.byteLength} bytes, ${pagesHere * PAGE_SIZE} needed`);
      }
      this.words.push(new Int32Array(buf, 0, pagesHere * WORDS_PER_PAGE));
      this.bytes.push(new Uint8Array(buf, 0, pagesHere * PAGE_SIZE));
    }
    const bitsetWords = Math.ceil(backing.maxPages / 32);
    if (backing.p2m.length < bitsetWords || backing.dirty.length < bitsetWords) {
      throw new Error(`p2m/dirty bitsets need ${bitsetWords} words`);
    }
    if (backing.control.length < CONTROL.SIZE) throw new Error(`control array needs ${CONTROL.SIZE} words`);
    this.p2m = backing.p2m;
    this.dirty = backing.dirty;
    this.control = backing.control;
  }

  /** True when pfn is populated. Only the guest's own hypercalls change its p2m while it runs. */
  isPopulated(pfn: number): boolean {
    return pfn >= 0 && pfn < this.maxPages && ((this.p2m[pfn >>> 5] >>> (pfn & 31)) & 1) === 1;
  }

  /** Throws GuestFault unless pfn is a populated page. */
  check(pfn: number): void {
    if (pfn >= 0 && pfn < this.maxPages && ((this.p2m[pfn >>> 5] >>> (pfn & 31)) & 1) === 1) return;
    this.fault(pfn);
  }

  // ---- 32-bit words; `word` is 0..1023 within the page ----

  read32(pfn: number, word: number): number {
    this.check(pfn);
    return this.words[pfn >>> WINDOW_SHIFT][((pfn & WINDOW_MASK) << WORD_SHIFT) | word];
  }

  readU32(pfn: number, word: number): number {
    return this.read32(pfn, word) >>> 0;
  }

  write32(pfn: number, word: number, value: number): void {
    this.check(pfn);
    this.words[pfn >>> WINDOW_SHIFT][((pfn & WINDOW_MASK) << WORD_SHIFT) | word] = value;
    this.markDirty(pfn);
  }

  /** Adds delta to a word and returns the new value (int32 wrap-around). */
  add32(pfn: number, word: number, delta: number): number {
    this.check(pfn);
    const view = this.words[pfn >>> WINDOW_SHIFT];
    const i = ((pfn & WINDOW_MASK) << WORD_SHIFT) | word;
    const v = (view[i] + delta) | 0;
    view[i] = v;
    this.markDirty(pfn);
    return v;
  }

  /** An unsigned 53-bit counter stored as two words (low, high) at `word` and `word + 1`. */
  read64(pfn: number, word: number): number {
    this.check(pfn);
    const view = this.words[pfn >>> WINDOW_SHIFT];
    const i = ((pfn & WINDOW_MASK) << WORD_SHIFT) | word;
    return (view[i] >>> 0) + (view[i + 1] >>> 0) * 0x100000000;
  }

  write64(pfn: number, word: number, value: number): void {
    this.check(pfn);
    const view = this.words[pfn >>> WINDOW_SHIFT];
    const i = ((pfn & WINDOW_MASK) << WORD_SHIFT) | word;
    view[i] = value % 0x100000000 | 0;
    view[i + 1] = Math.floor(value / 0x100000000) | 0;
    this.markDirty(pfn);
  }

  add64(pfn: number, word: number, delta: number): number {
    const v = this.read64(pfn, word) + delta;
    this.write64(pfn, word, v);
    return v;
  }

  // ---- bytes; `offset` is 0..4095 within the page, ranges must not cross the page end ----

  read8(pfn: number, offset: number): number {
    this.check(pfn);
    return this.bytes[pfn >>> WINDOW_SHIFT][((pfn & WINDOW_MASK) << BYTE_SHIFT) | offset];
  }

  write8(pfn: number, offset: number, value: number): void {
    this.check(pfn);
    this.bytes[pfn >>> WINDOW_SHIFT][((pfn & WINDOW_MASK) << BYTE_SHIFT) | offset] = value;
    this.markDirty(pfn);
  }

  /** Copies src[srcStart, srcStart+length) into the page at offset. */
  writeBytes(pfn: number, offset: number, src: Uint8Array, srcStart: number, length: number): void {
    this.checkRange(pfn, offset, length);
    const view = this.bytes[pfn >>> WINDOW_SHIFT];
    const base = ((pfn & WINDOW_MASK) << BYTE_SHIFT) + offset;
    for (let i = 0; i < length; i++) view[base + i] = src[srcStart + i];
    this.markDirty(pfn);
  }

  /** Copies length bytes of the page at offset into dst at dstStart. */
  readBytes(pfn: number, offset: number, dst: Uint8Array, dstStart: number, length: number): void {
    this.checkRange(pfn, offset, length);
    const view = this.bytes[pfn >>> WINDOW_SHIFT];
    const base = ((pfn & WINDOW_MASK) << BYTE_SHIFT) + offset;
    for (let i = 0; i < length; i++) dst[dstStart + i] = view[base + i];
  }

  // ---- whole pages ----

  /** Fills words [from, to) of a page with a pseudo-random stream from `seed` (xorshift32); returns a checksum of them. */
  fillWords(pfn: number, from: number, to: number, seed: number): number {
    this.check(pfn);
    const view = this.words[pfn >>> WINDOW_SHIFT];
    const base = (pfn & WINDOW_MASK) << WORD_SHIFT;
    let x = seed | 0 || 0x9e3779b9;
    let sum = 0x811c9dc5;
    for (let w = from; w < to; w++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      view[base + w] = x;
      sum = Math.imul(sum ^ x, 0x01000193);
    }
    this.markDirty(pfn);
    return sum >>> 0;
  }

  /** Checksum of words [from, to) of a page, the same function fillWords returns. */
  checksumWords(pfn: number, from: number, to: number): number {
    this.check(pfn);
    const view = this.words[pfn >>> WINDOW_SHIFT];
    const base = (pfn & WINDOW_MASK) << WORD_SHIFT;
    let sum = 0x811c9dc5;
    for (let w = from; w < to; w++) sum = Math.imul(sum ^ view[base + w], 0x01000193);
    return sum >>> 0;
  }

  zeroPage(pfn: number): void {
    this.check(pfn);
    const base = (pfn & WINDOW_MASK) << WORD_SHIFT;
    this.words[pfn >>> WINDOW_SHIFT].fill(0, base, base + WORDS_PER_PAGE);
    this.markDirty(pfn);
  }

  /** Copies a whole page (both must be populated). */
  copyPage(dstPfn: number, srcPfn: number): void {
    this.check(srcPfn);
    this.check(dstPfn);
    const src = this.words[srcPfn >>> WINDOW_SHIFT];
    const srcBase = (srcPfn & WINDOW_MASK) << WORD_SHIFT;
    this.words[dstPfn >>> WINDOW_SHIFT].set(src.subarray(srcBase, srcBase + WORDS_PER_PAGE), (dstPfn & WINDOW_MASK) << WORD_SHIFT);
    this.markDirty(dstPfn);
  }

  /** Log-dirty bookkeeping for a store to pfn that has just been made. */
  markDirty(pfn: number): void {
    if (Atomics.load(this.control, CONTROL.LOG_DIRTY) === 0) return;
    const word = pfn >>> 5;
    const bit = 1 << (pfn & 31);
    if ((Atomics.load(this.dirty, word) & bit) !== 0) return;
    if ((Atomics.or(this.dirty, word, bit) & bit) === 0) Atomics.add(this.control, CONTROL.FAULT_COUNT, 1);
  }

  private checkRange(pfn: number, offset: number, length: number): void {
    this.check(pfn);
    if (offset < 0 || length < 0 || offset + length > PAGE_SIZE) {
      throw new GuestFault(pfn, `access [${offset}, ${offset + length}) crosses the end of page ${pfn}`);
    }
  }

  private fault(pfn: number): never {
    if (!(pfn >= 0 && pfn < this.maxPages)) {
      throw new GuestFault(pfn, `access to pfn ${pfn} outside guest memory (max_pages ${this.maxPages})`);
    }
    throw new GuestFault(pfn, `access to pfn ${pfn}, which is not populated (ballooned out or never restored)`);
  }
}
