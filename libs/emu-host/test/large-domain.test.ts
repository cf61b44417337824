// Domains of more than 4 GiB: RAM spans several 1 GiB windows (a JS buffer cannot exceed 4 GiB).
// Shared memory is sparse, so only the pages touched here cost memory.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE_SIZE, WINDOW_PAGES, bitmapPfns } from '@ferry/hypervisor';
import { currentCommandSeq, guestCommand, scriptedReady, stampOf, startHost, stopAllHosts } from './helpers';

after(stopAllHosts);

const FOUR_GIB_PAGES = 4 * WINDOW_PAGES;
const MAX_PAGES = FOUR_GIB_PAGES + 1; // 5 windows, the last holding one page
/** Both sides of every window boundary, and the very last pfn. */
const EDGES = [0, WINDOW_PAGES - 1, WINDOW_PAGES, 2 * WINDOW_PAGES - 1, 2 * WINDOW_PAGES, 3 * WINDOW_PAGES, FOUR_GIB_PAGES - 1, FOUR_GIB_PAGES];

test('a restore domain above 4 GiB takes and returns pages on every window edge', async () => {
  const { driver } = await startHost({ name: 'large', capacityBytes: (MAX_PAGES + 16) * PAGE_SIZE });
  const domid = await driver.createRestoreDomain({ name: 'big', maxPages: MAX_PAGES, vcpus: 2 });
  const data = Buffer.alloc(EDGES.length * PAGE_SIZE);
  EDGES.forEach((_pfn, i) => data.fill(i + 1, i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  await driver.writePages(domid, EDGES, data);

  assert.deepEqual(bitmapPfns(await driver.p2m(domid)), EDGES);
  assert.equal((await driver.domainInfo(domid)).nrPages, EDGES.length);
  const pages = await driver.mapForeignPages(domid, [...EDGES, FOUR_GIB_PAGES - 2]);
  assert.deepEqual(Buffer.from(pages.data.subarray(0, data.length)), data);
  assert.equal(pages.errors[EDGES.length], -2, 'a pfn never written is not populated');
  pages.unmap();
  await driver.destroy(domid);
});

test('a running guest above 4 GiB writes its top pages and dom0 reads them', async () => {
  const { driver } = await startHost({ name: 'largeguest', capacityBytes: (MAX_PAGES + 16) * PAGE_SIZE });
  const domid = await driver.createDomain({ name: 'big', maxPages: MAX_PAGES, workload: { kind: 'idle', seed: 1, freeFraction: 0.5 } });
  await scriptedReady(driver, domid);
  await driver.logDirtyEnable(domid);
  await guestCommand(driver, domid, 'write', EDGES);
  const seq = currentCommandSeq();
  assert.deepEqual(bitmapPfns((await driver.logDirtyClean(domid)).bitmap), EDGES);
  const pages = await driver.mapForeignPages(domid, EDGES);
  EDGES.forEach((pfn, i) => assert.equal(pages.data.readInt32LE(i * PAGE_SIZE), stampOf(pfn, seq), `pfn ${pfn}`));
  pages.unmap();
  await guestCommand(driver, domid, 'balloon', [FOUR_GIB_PAGES]);
  assert.equal((await driver.domainInfo(domid)).nrPages, MAX_PAGES - 1);
  await driver.destroy(domid);
});

test('dom0 reads and writes runs of consecutive pfns across a window edge, holes and out-of-order pfns included', async () => {
  const { driver } = await startHost({ name: 'runs', capacityBytes: (2 * WINDOW_PAGES + 16) * PAGE_SIZE });
  const domid = await driver.createRestoreDomain({ name: 'runs', maxPages: 2 * WINDOW_PAGES, vcpus: 1 });
  // A run across the first window edge, a lone page, and a run written out of order.
  const written = [WINDOW_PAGES - 3, WINDOW_PAGES - 2, WINDOW_PAGES - 1, WINDOW_PAGES, WINDOW_PAGES + 1, 7, 12, 11];
  const data = Buffer.alloc(written.length * PAGE_SIZE);
  written.forEach((pfn, i) => data.fill((pfn % 251) + 1, i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  await driver.writePages(domid, written, data);

  // WINDOW_PAGES + 2 and 8 were never written: absent, zero-filled, and they split the runs.
  const read = [7, 8, WINDOW_PAGES - 1, WINDOW_PAGES, WINDOW_PAGES + 1, WINDOW_PAGES + 2, 11, 12];
  const pages = await driver.mapForeignPages(domid, read);
  read.forEach((pfn, i) => {
    const page = pages.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    const isWritten = written.includes(pfn);
    assert.equal(pages.errors[i], isWritten ? 0 : -2, `pfn ${pfn}`);
    const fill = isWritten ? (pfn % 251) + 1 : 0;
    assert.ok(page.every((b) => b === fill), `pfn ${pfn} reads back as ${fill}`);
  });
  pages.unmap();
  await driver.destroy(domid);
});
