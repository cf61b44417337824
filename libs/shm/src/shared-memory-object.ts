// A named POSIX shared memory object and the mappings this thread made of it.
//
// The object is sparse: only pages that have been touched cost memory, and punchHole gives pages
// back (they read as zero again). Mappings are ArrayBuffers over MAP_SHARED memory, so typed arrays
// (and Atomics) over them see other processes' writes. One buffer is limited to 4 GiB by Node 20;
// large objects are mapped in windows (mapWindows, 1 GiB by default).

import { readdirSync, readSync, writeSync } from 'node:fs';
import { binding } from './binding';

export const SHM_PAGE_SIZE = 4096;
/** Largest window mapWindows hands out by default: 1 GiB (2^18 pages of 4 KiB). */
export const MAX_WINDOW_BYTES = 1 << 30;
/** Node 20 refuses ArrayBuffers larger than this. */
export const MAX_MAPPING_BYTES = 2 ** 32;

export class SharedMemoryObject {
  private fd: number | null;
  private readonly mappings = new Set<ArrayBuffer>();

  private constructor(
    readonly name: string,
    fd: number,
    readonly size: number,
    readonly writable: boolean,
  ) {
    this.fd = fd;
  }

  /** Creates a new object of `sizeBytes` (zero-filled, sparse). Throws with code EEXIST if the name is taken. */
  static create(name: string, sizeBytes: number): SharedMemoryObject {
    const fd = binding.create(name, sizeBytes);
    return new SharedMemoryObject(name, fd, sizeBytes, true);
  }

  /** Opens an existing object. Throws with code ENOENT if there is none of that name. */
  static open(name: string, opts: { writable: boolean }): SharedMemoryObject {
    const fd = binding.open(name, opts.writable);
    try {
      return new SharedMemoryObject(name, fd, binding.size(fd), opts.writable);
    } catch (err) {
      binding.close(fd);
      throw err;
    }
  }

  get closed(): boolean {
    return this.fd === null;
  }

  /** Maps [offset, offset + length) into this thread. Offset must be page-aligned. */
  map(offset = 0, length = this.size - offset): ArrayBuffer {
    const fd = this.descriptor('map');
    if (offset + length > this.size) {
      throw new RangeError(
        `${this.name}: cannot map ${length} bytes at offset ${offset}, the object has ${this.size} bytes`,
      );
    }
    const buffer = binding.map(fd, offset, length, this.writable);
    this.mappings.add(buffer);
    return buffer;
  }

  /**
   * Maps the whole object as consecutive windows of `windowBytes` (the last one may be shorter):
   * window w covers bytes [w * windowBytes, (w + 1) * windowBytes).
   */
  mapWindows(windowBytes = MAX_WINDOW_BYTES): ArrayBuffer[] {
    if (windowBytes <= 0 || windowBytes % SHM_PAGE_SIZE !== 0 || windowBytes > MAX_MAPPING_BYTES) {
      throw new RangeError(`window size ${windowBytes} must be a positive multiple of ${SHM_PAGE_SIZE} up to 4 GiB`);
    }
    const windows: ArrayBuffer[] = [];
    try {
      for (let offset = 0; offset < this.size; offset += windowBytes) {
        windows.push(this.map(offset, Math.min(windowBytes, this.size - offset)));
      }
    } catch (err) {
      for (const w of windows) this.unmap(w);
      throw err;
    }
    return windows;
  }

  /** Ends a mapping now. Views of it read as empty afterwards (never as freed memory). */
  unmap(buffer: ArrayBuffer): void {
    if (!this.mappings.delete(buffer)) return;
    binding.unmap(buffer);
  }

  /** Frees the memory behind [offset, offset + length); the range reads as zeros afterwards. */
  punchHole(offset: number, length: number): void {
    binding.punchHole(this.descriptor('punchHole'), offset, length);
  }

  /**
   * Copies `length` bytes at `offset` of the object into target[targetOffset...) with pread, not
   * through a mapping. A process's first touch of each page of a mapping is a page fault; where
   * faults are dear (in a VM, 6-12 us a page) a read through the descriptor is an order of
   * magnitude cheaper for pages this process has not touched before (BENCHMARKS.md §3). Holes
   * read as zeros and stay holes.
   */
  read(offset: number, target: Uint8Array, targetOffset: number, length: number): void {
    const fd = this.descriptor('read');
    let done = 0;
    while (done < length) {
      const n = readSync(fd, target, targetOffset + done, length - done, offset + done);
      if (n === 0) throw new RangeError(`${this.name}: read of ${length} bytes at offset ${offset} ran past the end (${this.size} bytes)`);
      done += n;
    }
  }

  /** Copies source[sourceOffset, +length) into the object at `offset` with pwrite (see read()). */
  write(offset: number, source: Uint8Array, sourceOffset: number, length: number): void {
    const fd = this.descriptor('write');
    if (offset + length > this.size) {
      throw new RangeError(`${this.name}: cannot write ${length} bytes at offset ${offset}, the object has ${this.size} bytes`);
    }
    let done = 0;
    while (done < length) done += writeSync(fd, source, sourceOffset + done, length - done, offset + done);
  }

  /** Backs [offset, offset + length) with (zeroed) memory now instead of at first touch. */
  allocate(offset: number, length: number): void {
    binding.allocate(this.descriptor('allocate'), offset, length);
  }

  /** Bytes of memory the object really uses (touched pages, minus holes). */
  allocatedBytes(): number {
    return binding.allocatedBytes(this.descriptor('allocatedBytes'));
  }

  /** Unmaps every mapping made through this object and closes the descriptor. Idempotent. */
  close(): void {
    for (const buffer of this.mappings) binding.unmap(buffer);
    this.mappings.clear();
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      binding.close(fd);
    }
  }

  /** Removes the name; the memory is freed once every process has closed and unmapped it. */
  unlink(): void {
    binding.unlink(this.name);
  }

  private descriptor(op: string): number {
    if (this.fd === null) throw new Error(`${this.name}: ${op} after close()`);
    return this.fd;
  }
}

/** Removes a shared memory object by name; returns false if it did not exist. */
export function unlinkSharedMemory(name: string): boolean {
  try {
    binding.unlink(name);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Names ("/..." form) of the shared memory objects whose names start with `prefix` (Linux: /dev/shm). */
export function listSharedMemory(prefix: string): string[] {
  const bare = prefix.startsWith('/') ? prefix.slice(1) : prefix;
  return readdirSync('/dev/shm')
    .filter((entry) => entry.startsWith(bare))
    .map((entry) => `/${entry}`)
    .sort();
}

/** Mappings of this process that are still live (all threads): for leak checks in tests. */
export function liveMappingCount(): number {
  return binding.liveMappings();
}
