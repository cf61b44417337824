// Ballooning: decrease_reservation makes pages unpopulated (read as absent: -ENOENT and zeros),
// really returns their memory, and gives them back to the host; populate_physmap brings zeroed
// pages back within host capacity. Then the real guest's balloon driver follows memory/target.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import {
  PAGE_SIZE,
  bitmapCount,
  bitmapTest,
  domainMemoryNames,
  pagesToKiB,
  xsPaths,
  type HypervisorDriver,
} from '@ferry/hypervisor';
import {
  currentCommandSeq,
  guestCommand,
  isCode,
  scriptedReady,
  startHost,
  stampOf,
  stopAllHosts,
  waitForDomain,
  waitForXenstore,
  type TestHost,
} from './helpers';

const ENOENT = 2;

after(stopAllHosts);

/** Bytes of memory really backing the domain's RAM object. */
function ramAllocatedBytes(host: TestHost, domid: number): number {
  const { ram } = domainMemoryNames(host.process.name, host.process.pid, domid);
  return statSync(`/dev/shm${ram}`).blocks * 512;
}

async function populatedCount(driver: HypervisorDriver, domid: number): Promise<number> {
  return bitmapCount(await driver.p2m(domid));
}

test('decrease_reservation unpopulates pages, frees their memory and returns them to the host', async () => {
  const host = await startHost({ name: 'balloon' });
  const { driver } = host;
  const domid = await driver.createDomain({ name: 'b1', maxPages: 4096, workload: { kind: 'idle', seed: 1, freeFraction: 0.5 } });
  await scriptedReady(driver, domid);
  const pfns = Array.from({ length: 10 }, (_, i) => 100 + i);
  await guestCommand(driver, domid, 'write', pfns);
  const seq = currentCommandSeq();
  const freeBefore = (await driver.hostInfo()).freePages;
  const allocatedBefore = ramAllocatedBytes(host, domid);

  const ballooned = pfns.slice(0, 5);
  await guestCommand(driver, domid, 'balloon', ballooned);

  const info = await driver.domainInfo(domid);
  assert.equal(info.nrPages, 4096 - 5);
  assert.equal(await populatedCount(driver, domid), 4096 - 5, 'nr_pages agrees with the p2m');
  const p2m = await driver.p2m(domid);
  for (const pfn of pfns) assert.equal(bitmapTest(p2m, pfn), !ballooned.includes(pfn), `p2m bit of pfn ${pfn}`);
  assert.equal((await driver.hostInfo()).freePages, freeBefore + 5, 'the host got the pages back');
  assert.equal(ramAllocatedBytes(host, domid), allocatedBefore - 5 * PAGE_SIZE, 'their memory was really freed');

  const pages = await driver.mapForeignPages(domid, pfns);
  for (let i = 0; i < pfns.length; i++) {
    if (ballooned.includes(pfns[i])) {
      assert.equal(pages.errors[i], -ENOENT, `pfn ${pfns[i]} reads as absent`);
      assert.ok(pages.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).every((b) => b === 0), 'absent pages are zero-filled');
    } else {
      assert.equal(pages.errors[i], 0);
      assert.equal(pages.data.readInt32LE(i * PAGE_SIZE), stampOf(pfns[i], seq));
    }
  }
  pages.unmap();
  // Reading absent pages did not allocate memory for them.
  assert.equal(ramAllocatedBytes(host, domid), allocatedBefore - 5 * PAGE_SIZE);

  // The guest itself faults on a ballooned page and may not balloon it twice.
  await assert.rejects(guestCommand(driver, domid, 'read', [100]), /not populated/);
  await assert.rejects(guestCommand(driver, domid, 'balloon', [100]), /pfn 100 is not populated/);

  // populate_physmap brings a zeroed page back.
  await guestCommand(driver, domid, 'populate', [100]);
  assert.deepEqual(await guestCommand(driver, domid, 'read', [100, 105]), [0, stampOf(105, seq)]);
  assert.equal((await driver.domainInfo(domid)).nrPages, 4096 - 4);
  assert.equal((await driver.hostInfo()).freePages, freeBefore + 4);
  await driver.destroy(domid);
  assert.equal((await driver.hostInfo()).freePages, (await driver.hostInfo()).totalPages);
});

test('host capacity is exact: populate and a restore\'s writePages are refused with ENOMEM when it is used up', async () => {
  const host = await startHost({ name: 'balloonfull', capacityBytes: 4096 * PAGE_SIZE });
  const { driver } = host;
  const domid = await driver.createDomain({ name: 'full', maxPages: 4096, workload: { kind: 'idle', seed: 1, freeFraction: 0.5 } });
  await scriptedReady(driver, domid);
  assert.equal((await driver.hostInfo()).freePages, 0);
  const ballooned = Array.from({ length: 10 }, (_, i) => 2000 + i);
  await guestCommand(driver, domid, 'balloon', ballooned);
  assert.equal((await driver.hostInfo()).freePages, 10);

  // A restore domain takes 5 of the 10 free pages.
  const target = await driver.createRestoreDomain({ name: 'restore', maxPages: 64, vcpus: 1 });
  const page = (n: number) => new Uint8Array(n * PAGE_SIZE).fill(0xab);
  await driver.writePages(target, [0, 1, 2, 3, 4], page(5));
  assert.equal((await driver.hostInfo()).freePages, 5);

  // The guest wants its 10 pages back: refused, and nothing changed.
  await assert.rejects(guestCommand(driver, domid, 'populate', ballooned), /needs 10 pages but the host has 5 of 4096 pages free/);
  assert.equal((await driver.domainInfo(domid)).nrPages, 4086);
  // The restore wants 6 more: refused too.
  await assert.rejects(driver.writePages(target, [10, 11, 12, 13, 14, 15], page(6)), isCode('ENOMEM', /needs 6 pages/));
  assert.equal((await driver.domainInfo(target)).nrPages, 5);
  assert.equal((await driver.hostInfo()).freePages, 5);
  // Rewriting populated pages costs nothing; 5 new ones fit exactly.
  await driver.writePages(target, [0, 1, 10, 11, 12, 13, 14], page(7));
  assert.equal((await driver.hostInfo()).freePages, 0);
  assert.equal((await driver.domainInfo(target)).nrPages, 10);

  await driver.destroy(target);
  await driver.destroy(domid);
  assert.equal((await driver.hostInfo()).freePages, 4096);
});

test('the real guest\'s balloon driver follows memory/target and the host gets the pages', async () => {
  const host = await startHost({ name: 'guestballoon', kernel: 'guest' });
  const { driver } = host;
  const maxPages = 16384; // 64 MiB
  const domid = await driver.createDomain({ name: 'kv', maxPages, workload: { kind: 'kv', seed: 7, freeFraction: 0.5 } });
  const freeKiB = Number(await waitForXenstore(driver, xsPaths.meminfoFree(domid), (v) => v !== null && Number(v) > 0));
  const hostFreeBefore = (await driver.hostInfo()).freePages;
  const used = maxPages - freeKiB / 4;
  const targetPages = Math.ceil(used * 1.1);
  assert.ok(targetPages < maxPages, `the guest reports ${freeKiB} KiB free, enough to balloon`);

  await driver.xenstoreWrite(xsPaths.memoryTarget(domid), String(pagesToKiB(targetPages)));
  const info = await waitForDomain(driver, domid, (i) => i.nrPages <= targetPages, `ballooning down to ${targetPages} pages`);
  assert.equal(info.state, 'running');
  assert.equal(await populatedCount(driver, domid), info.nrPages);
  assert.equal((await driver.hostInfo()).freePages, hostFreeBefore + (maxPages - info.nrPages));
  assert.ok(ramAllocatedBytes(host, domid) <= info.nrPages * PAGE_SIZE, 'ballooned pages cost no memory');

  // An unpopulated pfn reads as absent.
  const p2m = await driver.p2m(domid);
  let absent = -1;
  for (let pfn = maxPages - 1; pfn >= 0 && absent < 0; pfn--) if (!bitmapTest(p2m, pfn)) absent = pfn;
  const pages = await driver.mapForeignPages(domid, [absent]);
  assert.equal(pages.errors[0], -ENOENT);
  pages.unmap();

  // Deflate: back to static-max.
  await driver.xenstoreWrite(xsPaths.memoryTarget(domid), String(pagesToKiB(maxPages)));
  await waitForDomain(driver, domid, (i) => i.nrPages === maxPages, 'deflating to static-max');
  const stats = JSON.parse((await waitForXenstore(driver, xsPaths.workloadStats(domid), (v) => v !== null))!) as { errors: number };
  assert.equal(stats.errors, 0, 'the workload saw no corruption');
  await driver.destroy(domid);
});
