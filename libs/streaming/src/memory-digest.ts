// MemoryDigest: SHA-256 over every populated page of a paused or suspended domain, in ascending
// pfn order, of the pfn as 8 bytes little-endian followed by the page's 4096 bytes. Equal digests
// on source and target mean the same pages are populated with the same contents.

import { createHash } from 'node:crypto';
import { bitmapPfns, MAX_BATCH_PAGES, PAGE_SIZE, type HypervisorDriver } from '@ferry/hypervisor';
import { failedPrecondition } from '@ferry/runtime';

const ENTRY_BYTES = 8 + PAGE_SIZE;

export interface MemoryDigestResult {
  digest: Buffer;
  pageCount: number;
  elapsedMs: number;
}

export async function memoryDigest(driver: HypervisorDriver, domid: number): Promise<MemoryDigestResult> {
  const started = performance.now();
  const info = await driver.domainInfo(domid);
  if (info.state === 'running') {
    throw failedPrecondition('DOMAIN_RUNNING', `domain ${domid} is running; pause or suspend it before taking its memory digest`);
  }
  const populated = bitmapPfns(await driver.p2m(domid), info.maxPages);
  const hash = createHash('sha256');
  // One staging buffer of (pfn, page) entries per batch: one hash update per batch, no per-page views.
  const staging = Buffer.allocUnsafeSlow(MAX_BATCH_PAGES * ENTRY_BYTES);
  let pageCount = 0;
  for (let start = 0; start < populated.length; start += MAX_BATCH_PAGES) {
    const pfns = populated.slice(start, start + MAX_BATCH_PAGES);
    const pages = await driver.mapForeignPages(domid, pfns);
    let at = 0;
    try {
      for (let i = 0; i < pfns.length; i++) {
        if (pages.errors[i] !== 0) continue; // no longer populated: not part of the memory
        const pfn = pfns[i];
        staging.writeUInt32LE(pfn % 0x1_0000_0000, at);
        staging.writeUInt32LE(Math.floor(pfn / 0x1_0000_0000), at + 4);
        pages.data.copy(staging, at + 8, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        at += ENTRY_BYTES;
        pageCount++;
      }
    } finally {
      pages.unmap();
    }
    hash.update(staging.subarray(0, at));
  }
  return { digest: hash.digest(), pageCount, elapsedMs: Math.round(performance.now() - started) };
}
