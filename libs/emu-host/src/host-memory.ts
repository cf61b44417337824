// The host's memory available to domains, in pages. One counter of free pages lives in a
// SharedArrayBuffer shared by the host's main thread and every guest worker, so populate and
// decrease_reservation from any thread keep it exact with compare-and-swap.

import { HypervisorError } from '@ferry/hypervisor';

const FREE = 0;

export class HostMemory {
  private readonly words: Int32Array;

  private constructor(
    readonly totalPages: number,
    readonly buffer: SharedArrayBuffer,
  ) {
    this.words = new Int32Array(buffer);
  }

  static create(totalPages: number): HostMemory {
    if (!Number.isInteger(totalPages) || totalPages < 1 || totalPages > 0x7fffffff) {
      throw new RangeError(`host capacity must be 1..2^31-1 pages, got ${totalPages}`);
    }
    const memory = new HostMemory(totalPages, new SharedArrayBuffer(4));
    Atomics.store(memory.words, FREE, totalPages);
    return memory;
  }

  /** The same counter, seen from another thread. */
  static attach(buffer: SharedArrayBuffer, totalPages: number): HostMemory {
    return new HostMemory(totalPages, buffer);
  }

  get freePages(): number {
    return Atomics.load(this.words, FREE);
  }

  /** Takes `pages` from the free pool, all or nothing; ENOMEM when there are not enough. */
  reserve(pages: number, purpose: string): void {
    if (pages <= 0) return;
    for (;;) {
      const free = Atomics.load(this.words, FREE);
      if (free < pages) {
        throw new HypervisorError(
          'ENOMEM',
          `${purpose} needs ${pages} pages but the host has ${free} of ${this.totalPages} pages free`,
        );
      }
      if (Atomics.compareExchange(this.words, FREE, free, free - pages) === free) return;
    }
  }

  release(pages: number): void {
    if (pages > 0) Atomics.add(this.words, FREE, pages);
  }
}
