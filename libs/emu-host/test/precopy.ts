// A minimal pre-copy between two emulated hosts for the tests, using only HypervisorDriver calls:
// round 0 sends every populated page, later rounds the CLEANed dirty pages, then suspend, FINAL,
// the last dirty pages and the vCPU context. (The product's loop lives in the per-host services.)

import { createHash } from 'node:crypto';
import {
  MAX_BATCH_PAGES,
  PAGE_SIZE,
  bitmapPfns,
  type HypervisorDriver,
} from '@ferry/hypervisor';

export interface Side {
  driver: HypervisorDriver;
  domid: number;
}

/** Copies the pfns that are populated at the source; returns how many pages were written. */
export async function copyPages(from: Side, to: Side, pfns: number[]): Promise<number> {
  let written = 0;
  for (let start = 0; start < pfns.length; start += MAX_BATCH_PAGES) {
    const batch = pfns.slice(start, start + MAX_BATCH_PAGES);
    const pages = await from.driver.mapForeignPages(from.domid, batch);
    try {
      const present: number[] = [];
      const data = Buffer.allocUnsafe(batch.length * PAGE_SIZE);
      for (let i = 0; i < batch.length; i++) {
        if (pages.errors[i] !== 0) continue; // ballooned: nothing to send (an XTAB record in Xen)
        pages.data.copy(data, present.length * PAGE_SIZE, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        present.push(batch[i]);
      }
      if (present.length > 0) await to.driver.writePages(to.domid, present, data.subarray(0, present.length * PAGE_SIZE));
      written += present.length;
    } finally {
      pages.unmap();
    }
  }
  return written;
}

export interface PrecopyOptions {
  /** Live rounds after round 0. */
  rounds: number;
  /** Runs between rounds (e.g. the test's own writes into the guest). */
  betweenRounds?: (round: number) => Promise<void>;
}

/** Live pre-copy then stop-and-copy; the source ends suspended, the target paused with the context set. */
export async function precopy(from: Side, to: Side, opts: PrecopyOptions): Promise<{ pagesSent: number }> {
  let pagesSent = 0;
  await from.driver.logDirtyEnable(from.domid);
  pagesSent += await copyPages(from, to, bitmapPfns(await from.driver.p2m(from.domid)));
  for (let round = 1; round <= opts.rounds; round++) {
    await opts.betweenRounds?.(round);
    pagesSent += await copyPages(from, to, bitmapPfns((await from.driver.logDirtyClean(from.domid)).bitmap));
  }
  await from.driver.suspend(from.domid);
  const final = await from.driver.logDirtyClean(from.domid, { final: true });
  pagesSent += await copyPages(from, to, bitmapPfns(final.bitmap));
  await from.driver.logDirtyDisable(from.domid);
  await to.driver.setVcpuContext(to.domid, await from.driver.getVcpuContext(from.domid));
  return { pagesSent };
}

/** SHA-256 of every populated page of a domain, in pfn order, and the populated pfns. */
export async function memoryDigest(side: Side): Promise<{ digest: string; populated: number[] }> {
  const p2m = await side.driver.p2m(side.domid);
  const populated = bitmapPfns(p2m);
  const hash = createHash('sha256');
  for (let start = 0; start < populated.length; start += MAX_BATCH_PAGES) {
    const batch = populated.slice(start, start + MAX_BATCH_PAGES);
    const pages = await side.driver.mapForeignPages(side.domid, batch);
    hash.update(pages.data);
    pages.unmap();
  }
  return { digest: hash.digest('hex'), populated };
}
