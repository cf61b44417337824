// Reusable 4 MiB buffers for foreign page batches: a migration reads thousands of batches, and
// handing each one a fresh 4 MiB allocation would keep the garbage collector busy for nothing.

import { MAX_BATCH_PAGES, PAGE_SIZE } from '@ferry/hypervisor';

export const BATCH_BYTES = MAX_BATCH_PAGES * PAGE_SIZE;

export class PageBufferPool {
  private readonly free: Buffer[] = [];

  constructor(private readonly keep = 8) {}

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  release(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buffer);
  }
}
