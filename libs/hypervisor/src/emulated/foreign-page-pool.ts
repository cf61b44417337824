// Reusable 4 MiB buffers (one full batch) for foreign-page reads, so a page-streamer reading a
// domain batch after batch does not allocate (and the GC does not churn) 4 MiB per batch.

import { MAX_BATCH_PAGES, PAGE_SIZE } from '../driver';

const BATCH_BYTES = MAX_BATCH_PAGES * PAGE_SIZE;

export class ForeignPagePool {
  private readonly free: Buffer[] = [];

  constructor(private readonly keep = 8) {}

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  release(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buffer);
  }
}
