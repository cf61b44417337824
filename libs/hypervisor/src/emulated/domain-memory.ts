// One emulated domain's shared memory, mapped into the calling thread: RAM windows, the p2m and
// log-dirty bitsets, the host header and the guest-visible control words (see memory-layout.ts).
// The emulated host creates it; the host's guest worker and dom0 processes open it by name.

import { endianness } from 'node:os';
import { SharedMemoryObject, unlinkSharedMemory } from '@ferry/shm';
import { HypervisorError, PAGE_SIZE } from '../driver';
import {
  CONTROL_BYTE_OFFSET,
  CONTROL_WORDS,
  DomainStateCode,
  EMU_MEMORY_LAYOUT_VERSION,
  EMU_MEMORY_MAGIC,
  HEADER,
  WINDOW_BYTES,
  bitmapBytes,
  metaLayout,
  type DomainMemoryNames,
} from './memory-layout';

if (endianness() !== 'LE') {
  // Bitsets are handed out byte for byte as DirtyBitmaps, which needs little-endian words.
  throw new Error('the emulated hypervisor needs a little-endian machine');
}

export class DomainMemory {
  private windows: ArrayBuffer[] | null = null;
  /** Host header words (HEADER.*). */
  readonly header: Int32Array;
  /** Guest-visible control words (MemoryBacking.control). */
  readonly control: Int32Array;
  readonly p2m: Int32Array;
  readonly dirty: Int32Array;

  private constructor(
    readonly names: DomainMemoryNames,
    readonly maxPages: number,
    private readonly ramObject: SharedMemoryObject,
    private readonly metaObject: SharedMemoryObject,
  ) {
    const layout = metaLayout(maxPages);
    const meta = metaObject.map(0, layout.totalBytes);
    this.header = new Int32Array(meta, 0, HEADER.WORDS);
    this.control = new Int32Array(meta, CONTROL_BYTE_OFFSET, CONTROL_WORDS);
    this.p2m = new Int32Array(meta, layout.p2mByteOffset, layout.bitsetWords);
    this.dirty = new Int32Array(meta, layout.dirtyByteOffset, layout.bitsetWords);
  }

  /** Creates the RAM and meta objects of a new domain: nothing populated, state PAUSED. */
  static create(names: DomainMemoryNames, maxPages: number, domid: number): DomainMemory {
    if (!Number.isInteger(maxPages) || maxPages < 1) {
      throw new HypervisorError('EINVAL', `maxPages must be a positive integer, got ${maxPages}`);
    }
    const layout = metaLayout(maxPages);
    const created: SharedMemoryObject[] = [];
    try {
      const meta = SharedMemoryObject.create(names.meta, layout.totalBytes);
      created.push(meta);
      const ram = SharedMemoryObject.create(names.ram, maxPages * PAGE_SIZE);
      created.push(ram);
      const memory = new DomainMemory(names, maxPages, ram, meta);
      memory.header[HEADER.VERSION] = EMU_MEMORY_LAYOUT_VERSION;
      memory.header[HEADER.MAX_PAGES] = maxPages;
      memory.header[HEADER.DOMID] = domid;
      Atomics.store(memory.header, HEADER.STATE, DomainStateCode.PAUSED);
      // The magic goes last: a reader that sees it sees a complete header.
      Atomics.store(memory.header, HEADER.MAGIC, EMU_MEMORY_MAGIC);
      return memory;
    } catch (err) {
      for (const obj of created) {
        obj.close();
        unlinkSharedMemory(obj.name);
      }
      throw err;
    }
  }

  /** Maps an existing domain's memory (read-write: dom0 also writes pages during a restore). */
  static open(names: DomainMemoryNames): DomainMemory {
    let meta: SharedMemoryObject | null = null;
    let ram: SharedMemoryObject | null = null;
    try {
      meta = SharedMemoryObject.open(names.meta, { writable: true });
      if (meta.size < PAGE_SIZE) throw new HypervisorError('EIO', `${names.meta} is too small to be a domain's memory`);
      const headBuffer = meta.map(0, PAGE_SIZE);
      const head = new Int32Array(headBuffer);
      const magic = Atomics.load(head, HEADER.MAGIC);
      const version = head[HEADER.VERSION];
      const maxPages = head[HEADER.MAX_PAGES];
      meta.unmap(headBuffer); // mapped again below with the full layout
      if (magic !== EMU_MEMORY_MAGIC) {
        throw new HypervisorError('EIO', `${names.meta} is not an emulated domain's memory (bad magic ${magic >>> 0})`);
      }
      if (version !== EMU_MEMORY_LAYOUT_VERSION) {
        throw new HypervisorError(
          'EIO',
          `${names.meta} has memory layout version ${version}; this code understands ${EMU_MEMORY_LAYOUT_VERSION}`,
        );
      }
      ram = SharedMemoryObject.open(names.ram, { writable: true });
      const layout = metaLayout(maxPages);
      if (meta.size < layout.totalBytes || ram.size !== maxPages * PAGE_SIZE) {
        throw new HypervisorError('EIO', `${names.ram}/${names.meta} have the wrong size for ${maxPages} pages`);
      }
      return new DomainMemory(names, maxPages, ram, meta);
    } catch (err) {
      meta?.close();
      ram?.close();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HypervisorError('ESRCH', `the domain's memory (${names.meta}) no longer exists`);
      }
      throw err;
    }
  }

  /**
   * The RAM mapped as windows of WINDOW_BYTES (the last may be shorter), mapped at first use: the
   * guest's own view. Dom0 processes copy pages with readPages/writePages instead.
   */
  get ramWindows(): ArrayBuffer[] {
    return (this.windows ??= this.ramObject.mapWindows(WINDOW_BYTES));
  }

  get state(): DomainStateCode {
    return Atomics.load(this.header, HEADER.STATE) as DomainStateCode;
  }

  set state(code: DomainStateCode) {
    Atomics.store(this.header, HEADER.STATE, code);
  }

  get nrPages(): number {
    return Atomics.load(this.header, HEADER.NR_PAGES);
  }

  addNrPages(delta: number): void {
    Atomics.add(this.header, HEADER.NR_PAGES, delta);
  }

  isPopulated(pfn: number): boolean {
    return ((Atomics.load(this.p2m, pfn >>> 5) >>> (pfn & 31)) & 1) === 1;
  }

  /** Sets the p2m bit; returns true if the page was not populated before. */
  setPopulated(pfn: number): boolean {
    const bit = 1 << (pfn & 31);
    return (Atomics.or(this.p2m, pfn >>> 5, bit) & bit) === 0;
  }

  /** Clears the p2m bit; returns true if the page was populated before. */
  clearPopulated(pfn: number): boolean {
    const bit = 1 << (pfn & 31);
    return (Atomics.and(this.p2m, pfn >>> 5, ~bit) & bit) !== 0;
  }

  markDirty(pfn: number): void {
    Atomics.or(this.dirty, pfn >>> 5, 1 << (pfn & 31));
  }

  /**
   * Copies pages [firstPfn, firstPfn + count) into target[targetOffset...) through the RAM
   * object's descriptor rather than this thread's mapping: dom0 processes read each page of a
   * migrating guest once or a few times, and a first touch through a mapping costs a page fault
   * per page (see SharedMemoryObject.read). Unpopulated pages read as zeros.
   */
  readPages(firstPfn: number, count: number, target: Uint8Array, targetOffset: number): void {
    this.ramObject.read(firstPfn * PAGE_SIZE, target, targetOffset, count * PAGE_SIZE);
  }

  /** Copies source[sourceOffset...) into pages [firstPfn, firstPfn + count) through the descriptor (see readPages). */
  writePages(firstPfn: number, count: number, source: Uint8Array, sourceOffset: number): void {
    this.ramObject.write(firstPfn * PAGE_SIZE, source, sourceOffset, count * PAGE_SIZE);
  }

  /** Gives pages [firstPfn, firstPfn + count) back to the host: they read as zeros and cost no memory. */
  punchPages(firstPfn: number, count: number): void {
    this.ramObject.punchHole(firstPfn * PAGE_SIZE, count * PAGE_SIZE);
  }

  /** Backs pages [firstPfn, firstPfn + count) with zeroed memory now rather than at first write. */
  allocatePages(firstPfn: number, count: number): void {
    this.ramObject.allocate(firstPfn * PAGE_SIZE, count * PAGE_SIZE);
  }

  /** Memory really backing the RAM object (touched, populated pages). */
  allocatedRamBytes(): number {
    return this.ramObject.allocatedBytes();
  }

  /** A snapshot of the p2m as a DirtyBitmap-ordered byte array. */
  p2mBitmap(): Uint8Array {
    return bitsetSnapshot(this.p2m, this.maxPages);
  }

  /** Unmaps everything mapped here and closes the descriptors (the objects stay). */
  close(): void {
    this.ramObject.close();
    this.metaObject.close();
  }

  /** Removes both names (the creator does this on destroy). */
  unlink(): void {
    unlinkSharedMemory(this.names.ram);
    unlinkSharedMemory(this.names.meta);
  }
}

/** Copies a bitset's bytes (little-endian words) into a DirtyBitmap-ordered array of ceil(maxPages / 8) bytes. */
export function bitsetSnapshot(words: Int32Array, maxPages: number): Uint8Array {
  const out = new Uint8Array(bitmapBytes(maxPages));
  out.set(new Uint8Array(words.buffer, words.byteOffset, out.length));
  return out;
}
