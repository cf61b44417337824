// A guest moved to a second emulated host process from copied memory and vCPU context: every
// populated page read with mapForeignPages and written with writePages, ballooned pages left out,
// and the guest continues on the destination from kernel.resume() with all of its data.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { bitmapPfns, xsPaths } from '@ferry/hypervisor';
import { KvClient, LoadGenerator } from '@ferry/guest';
import {
  currentCommandSeq,
  guestCommand,
  scriptedReady,
  stampOf,
  startHost,
  stopAllHosts,
  waitForDomain,
  waitForXenstore,
} from './helpers';
import { memoryDigest, precopy } from './precopy';

after(stopAllHosts);

test('a scripted guest resumes on a second host with the same memory, p2m and context', async () => {
  const source = await startHost({ name: 'migsrc' });
  const target = await startHost({ name: 'migdst' });
  const maxPages = 8192;
  const domid = await source.driver.createDomain({ name: 'mover', maxPages, workload: { kind: 'idle', seed: 11, freeFraction: 0.5 } });
  await scriptedReady(source.driver, domid);

  // Content in every 1 GiB-window-relative corner we can reach, and holes from ballooning.
  const expected = new Map<number, number>();
  const write = async (pfns: number[]) => {
    await guestCommand(source.driver, domid, 'write', pfns);
    const seq = currentCommandSeq();
    for (const pfn of pfns) expected.set(pfn, stampOf(pfn, seq));
  };
  await write(Array.from({ length: 300 }, (_, i) => 1 + i * 27));
  const ballooned = Array.from({ length: 64 }, (_, i) => 4000 + i);
  await guestCommand(source.driver, domid, 'balloon', ballooned);
  for (const pfn of ballooned) expected.delete(pfn); // their contents are gone

  const dstDomid = await target.driver.createRestoreDomain({ name: 'mover', maxPages, vcpus: 1 });
  const from = { driver: source.driver, domid };
  const to = { driver: target.driver, domid: dstDomid };
  await precopy(from, to, {
    rounds: 2,
    betweenRounds: (round) => write(Array.from({ length: 20 }, (_, i) => 7 + i * 113 + round)),
  });

  // Before the destination runs: the same pages are populated, with the same bytes.
  const src = await memoryDigest(from);
  const dst = await memoryDigest(to);
  assert.deepEqual(dst.populated, src.populated);
  assert.equal(dst.digest, src.digest);
  assert.equal((await target.driver.domainInfo(dstDomid)).nrPages, maxPages - ballooned.length);
  assert.deepEqual(bitmapPfns(await target.driver.p2m(dstDomid)).filter((pfn) => ballooned.includes(pfn)), []);

  await target.driver.unpause(dstDomid);
  await scriptedReady(target.driver, dstDomid, 1); // resume() ran: one more resume than boot
  await source.driver.destroy(domid);
  const pfns = [...expected.keys()];
  assert.deepEqual(await guestCommand(target.driver, dstDomid, 'read', pfns), pfns.map((pfn) => expected.get(pfn)));
  await assert.rejects(guestCommand(target.driver, dstDomid, 'read', [ballooned[0]]), /not populated/);
  // It keeps running there: its vCPU loop goes on from the saved tick count.
  assert.ok((await guestCommand(target.driver, dstDomid, 'ticks')) as number > 0);
  await target.driver.destroy(dstDomid);
});

test('a kv guest keeps every acknowledged write across a live migration to another host', async () => {
  const source = await startHost({ name: 'kvsrc', kernel: 'guest' });
  const target = await startHost({ name: 'kvdst', kernel: 'guest' });
  const maxPages = 16384; // 64 MiB
  const domid = await source.driver.createDomain({ name: 'kv', maxPages, workload: { kind: 'kv', seed: 21, freeFraction: 0.5 } });
  const sourceAddress = (await waitForXenstore(source.driver, xsPaths.serviceAddress(domid), (v) => v !== null))!;

  // Data written over TCP before the migration.
  const client = await KvClient.connect(sourceAddress);
  const keys = Array.from({ length: 200 }, (_, i) => `before-${i}`);
  for (const key of keys) await client.set(key, `value-of-${key}`);
  client.close();

  // And traffic during it, following the guest to wherever it runs.
  let dstDomid = -1;
  let moved = false;
  const load = new LoadGenerator({
    resolveAddress: () =>
      moved ? target.driver.xenstoreRead(xsPaths.serviceAddress(dstDomid)) : source.driver.xenstoreRead(xsPaths.serviceAddress(domid)),
    writeRate: 100,
  });
  load.start();
  await load.whenAcked(20);

  dstDomid = await target.driver.createRestoreDomain({ name: 'kv', maxPages, vcpus: 1 });
  const from = { driver: source.driver, domid };
  const to = { driver: target.driver, domid: dstDomid };
  await precopy(from, to, { rounds: 3, betweenRounds: () => load.whenAcked(load.stats().acked_writes + 5) });
  const src = await memoryDigest(from);
  const dst = await memoryDigest(to);
  assert.equal(dst.digest, src.digest, 'the destination holds exactly the suspended source\'s memory');

  // Keep the balloon where it was on the source, then run the guest on the destination.
  await target.driver.xenstoreWrite(
    xsPaths.memoryTarget(dstDomid),
    (await source.driver.xenstoreRead(xsPaths.memoryTarget(domid)))!,
  );
  moved = true;
  await target.driver.unpause(dstDomid);
  await source.driver.destroy(domid);
  const targetAddress = (await waitForXenstore(
    target.driver,
    xsPaths.serviceAddress(dstDomid),
    (v) => v !== null && v !== sourceAddress,
  ))!;

  await load.whenAcked(load.stats().acked_writes + 20); // traffic flows on the destination
  await load.stop();
  const stats = await load.verify();
  assert.equal(stats.lost_writes, 0, 'every acknowledged write survived');
  assert.equal(stats.wrong_reads, 0);

  const after = await KvClient.connect(targetAddress);
  try {
    for (const key of keys) assert.equal(await after.get(key), `value-of-${key}`);
  } finally {
    after.close();
  }
  const info = await waitForDomain(target.driver, dstDomid, (i) => i.state === 'running', 'running on the destination');
  assert.equal(info.shutdownReason, null);
  const workload = JSON.parse(
    (await waitForXenstore(target.driver, xsPaths.workloadStats(dstDomid), (v) => v !== null && JSON.parse(v).ops > 0))!,
  ) as { errors: number };
  assert.equal(workload.errors, 0, 'the guest\'s own data checks found no corruption');
  await target.driver.destroy(dstDomid);
});
