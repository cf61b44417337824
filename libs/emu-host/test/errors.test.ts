// Bad input is refused with a HypervisorError whose code says what is wrong and whose message says
// which domain, page or limit was involved.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE_SIZE, connectEmulatedDriver, type WorkloadSpec } from '@ferry/hypervisor';
import { isCode, scriptedReady, startHost, stopAllHosts, type TestHost } from './helpers';

let host: TestHost;
let domid: number;
const CAPACITY_PAGES = 8192;
const idle: WorkloadSpec = { kind: 'idle', seed: 1, freeFraction: 0.5 };

before(async () => {
  host = await startHost({ name: 'errors', capacityBytes: CAPACITY_PAGES * PAGE_SIZE });
  domid = await host.driver.createDomain({ name: 'victim', maxPages: 2048, workload: idle });
  await scriptedReady(host.driver, domid);
});

after(stopAllHosts);

test('ESRCH: an unknown domain', async () => {
  const { driver } = host;
  const unknown = 4242;
  for (const call of [
    () => driver.domainInfo(unknown),
    () => driver.pause(unknown),
    () => driver.unpause(unknown),
    () => driver.destroy(unknown),
    () => driver.suspend(unknown),
    () => driver.resumeSuspended(unknown),
    () => driver.logDirtyEnable(unknown),
    () => driver.logDirtyClean(unknown),
    () => driver.p2m(unknown),
    () => driver.mapForeignPages(unknown, [0]),
    () => driver.writePages(unknown, [0], new Uint8Array(PAGE_SIZE)),
    () => driver.getVcpuContext(unknown),
    () => driver.setVcpuContext(unknown, new Uint8Array(8)),
  ]) {
    await assert.rejects(call(), isCode('ESRCH', /no domain 4242 on host errors/));
  }
});

test('ENOMEM: a domain larger than the host, or than what is free', async () => {
  const { driver } = host;
  await assert.rejects(
    driver.createDomain({ name: 'huge', maxPages: CAPACITY_PAGES + 1, workload: idle }),
    isCode('ENOMEM', /larger than host errors/),
  );
  await assert.rejects(driver.createRestoreDomain({ name: 'huge', maxPages: CAPACITY_PAGES + 1, vcpus: 1 }), isCode('ENOMEM', /larger than host/));
  await assert.rejects(
    driver.createDomain({ name: 'toomuch', maxPages: CAPACITY_PAGES - 1024, workload: idle }),
    isCode('ENOMEM', /needs 7168 pages but the host has 6144 of 8192 pages free/),
  );
  assert.equal((await driver.hostInfo()).freePages, CAPACITY_PAGES - 2048, 'a refused domain takes nothing');
  assert.deepEqual((await driver.listDomains()).map((d) => d.name), ['victim']);
});

test('EINVAL: malformed specs, pfns outside the p2m, wrong data sizes, bad xenstore paths', async () => {
  const { driver } = host;
  await assert.rejects(driver.createDomain({ name: 'bad name!', maxPages: 16 }), isCode('EINVAL', /domain name/));
  await assert.rejects(driver.createDomain({ name: 'zero', maxPages: 0 }), isCode('EINVAL', /maxPages must be a positive integer/));
  await assert.rejects(driver.createDomain({ name: 'frac', maxPages: 1.5 }), isCode('EINVAL', /maxPages/));
  await assert.rejects(driver.createDomain({ name: 'cpus', maxPages: 16, vcpus: 0 }), isCode('EINVAL', /vcpus/));
  await assert.rejects(
    driver.createDomain({ name: 'kind', maxPages: 16, workload: { ...idle, kind: 'bitcoin' as WorkloadSpec['kind'] } }),
    isCode('EINVAL', /workload kind "bitcoin"/),
  );
  await assert.rejects(driver.createDomain({ name: 'free', maxPages: 16, workload: { ...idle, freeFraction: 2 } }), isCode('EINVAL', /freeFraction/));
  for (const pfn of [2048, -1, 1.5, Number.NaN]) {
    await assert.rejects(driver.mapForeignPages(domid, [0, pfn]), isCode('EINVAL', /outside domain \d+'s p2m \[0, 2048\)/));
  }
  await driver.pause(domid);
  await assert.rejects(driver.writePages(domid, [0, 1], new Uint8Array(PAGE_SIZE)), isCode('EINVAL', /need 8192 bytes of data, got 4096/));
  await assert.rejects(driver.writePages(domid, [2048], new Uint8Array(PAGE_SIZE)), isCode('EINVAL', /outside/));
  await driver.unpause(domid);
  await assert.rejects(driver.xenstoreWrite('/local/domain/1/a b', 'x'), isCode('EINVAL', /invalid xenstore path/));
});

test('E2BIG: batches larger than 1024 pages', async () => {
  const { driver } = host;
  const pfns = Array.from({ length: 1025 }, (_, i) => i);
  await assert.rejects(driver.mapForeignPages(domid, pfns), isCode('E2BIG', /1025 pages exceeds the limit of 1024/));
  await assert.rejects(driver.writePages(domid, pfns, new Uint8Array(1025 * PAGE_SIZE)), isCode('E2BIG', /1025 pages/));
  const full = await driver.mapForeignPages(domid, pfns.slice(0, 1024));
  assert.equal(full.data.length, 1024 * PAGE_SIZE);
  full.unmap();
});

test('EEXIST: a name already used on the host', async () => {
  const { driver } = host;
  await assert.rejects(driver.createDomain({ name: 'victim', maxPages: 16, workload: idle }), isCode('EEXIST', /named victim already exists/));
  await assert.rejects(driver.createRestoreDomain({ name: 'victim', maxPages: 16, vcpus: 1 }), isCode('EEXIST', /victim/));
});

test('EBUSY: operations in the wrong state', async () => {
  const { driver } = host;
  await assert.rejects(driver.writePages(domid, [0], new Uint8Array(PAGE_SIZE)), isCode('EBUSY', /is running; pages are written into a paused domain only/));
  await assert.rejects(driver.setVcpuContext(domid, new Uint8Array(8)), isCode('EBUSY', /before its first unpause/));
  await assert.rejects(driver.resumeSuspended(domid), isCode('EBUSY', /not suspended \(it is running\)/));
  const restore = await driver.createRestoreDomain({ name: 'empty', maxPages: 16, vcpus: 1 });
  await assert.rejects(driver.unpause(restore), isCode('EBUSY', /no vCPU context yet/));
  await assert.rejects(driver.getVcpuContext(restore), isCode('EBUSY', /no vCPU context yet/));
  await driver.setVcpuContext(restore, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...(await driver.getVcpuContext(restore))], [1, 2, 3]);
  await driver.destroy(restore);
});

test('a destroyed domain is gone for every connection, including one that had mapped its memory', async () => {
  const { driver, process: emu } = host;
  const other = await connectEmulatedDriver(emu.socketPath);
  try {
    const temp = await driver.createDomain({ name: 'shortlived', maxPages: 64, workload: idle });
    await scriptedReady(driver, temp);
    (await other.mapForeignPages(temp, [0])).unmap(); // `other` now holds a mapping of its memory
    await driver.destroy(temp);
    // Its mapping is either still cached (the driver sees DESTROYED) or already swept (the host
    // answers): ESRCH either way.
    await assert.rejects(other.mapForeignPages(temp, [0]), isCode('ESRCH', /has been destroyed|no domain/));
    await assert.rejects(driver.mapForeignPages(temp, [0]), isCode('ESRCH', /no domain/));
  } finally {
    await other.close();
  }
});
