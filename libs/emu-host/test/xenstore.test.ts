// Xenstore: the tree and its watches, alone (pure logic) and through a host's hypercall socket.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectEmulatedDriver, HypervisorError, xsPaths } from '@ferry/hypervisor';
import { Xenstore } from '../src/xenstore';
import { isCode, scriptedReady, startHost, stopAllHosts, waitForXenstore } from './helpers';

after(stopAllHosts);

/** Lets queued microtasks (a new watch's first event) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('writes create ancestors; list and remove work on subtrees', () => {
  const xs = new Xenstore();
  xs.write('/local/domain/3/memory/target', '1024');
  assert.equal(xs.read('/local/domain/3/memory/target'), '1024');
  assert.equal(xs.read('/local/domain/3/memory'), '');
  assert.equal(xs.read('/local/domain/3/nothing'), null);
  xs.write('/local/domain/3/memory/static-max', '2048');
  assert.deepEqual(xs.list('/local/domain/3/memory'), ['static-max', 'target']);
  xs.remove('/local/domain/3');
  assert.equal(xs.read('/local/domain/3/memory/target'), null);
  assert.deepEqual(xs.list('/local/domain'), []);
});

test('a watch fires once at registration and for every change at or below its path, not beside it', async () => {
  const xs = new Xenstore();
  const seen: string[] = [];
  const watch = xs.watch('/a/b', (path) => seen.push(path));
  await settle();
  assert.deepEqual(seen, ['/a/b']);
  xs.write('/a/b', '1');
  xs.write('/a/b/c/d', '2');
  xs.write('/a/bc', '3'); // a sibling whose name starts the same: not below /a/b
  xs.write('/a', '4'); // above: not below /a/b
  assert.deepEqual(seen, ['/a/b', '/a/b', '/a/b/c/d']);
  xs.remove('/a'); // removing an ancestor fires the watch on its own path
  assert.deepEqual(seen.at(-1), '/a/b');
  watch.close();
  xs.write('/a/b', '5');
  assert.equal(seen.length, 4);
});

test('special @ paths fire only when the host fires them; bad paths and values are EINVAL', async () => {
  const xs = new Xenstore();
  const seen: string[] = [];
  xs.watch('@releaseDomain', (path) => seen.push(path));
  await settle();
  xs.write('/local/domain/1/name', 'x');
  xs.fireSpecial('@releaseDomain');
  assert.deepEqual(seen, ['@releaseDomain', '@releaseDomain']);
  for (const bad of ['relative', '/trailing/', '//double', '/sp ace', '/dot.ted', '']) {
    assert.throws(() => xs.write(bad, 'v'), (err: unknown) => err instanceof HypervisorError && err.code === 'EINVAL', bad);
  }
  assert.throws(() => xs.write('/big', 'x'.repeat(4097)), /longer than 4096 bytes/);
  assert.throws(() => xs.remove('/'), /root/);
});

test('through the driver: the domain home, watches, unwatch, and @releaseDomain', async () => {
  const { driver, process: emu } = await startHost({ name: 'xenstore' });
  const domid = await driver.createDomain({ name: 'xs', maxPages: 1024, workload: { kind: 'idle', seed: 1, freeFraction: 0.5 } });
  await scriptedReady(driver, domid);
  assert.equal(await driver.xenstoreRead(xsPaths.memoryStaticMax(domid)), String(1024 * 4));
  assert.equal(await driver.xenstoreRead(xsPaths.memoryTarget(domid)), String(1024 * 4));
  assert.equal(await driver.xenstoreRead(`/local/domain/${domid}/name`), 'xs');
  assert.equal(await driver.xenstoreRead(xsPaths.featureSuspend(domid)), '1', 'written by the guest');

  // Events arrive in order on the connection: the registration event, then each write below.
  const seen: string[] = [];
  const base = '/tool/test';
  const watch = await driver.xenstoreWatch(base, (path) => seen.push(path));
  await driver.xenstoreWrite(`${base}/x`, '1');
  await driver.xenstoreWrite('/tool/testing', 'beside');
  await driver.xenstoreWrite(`${base}/done`, '1');
  await waitUntil(() => seen.includes(`${base}/done`));
  assert.deepEqual(seen, [base, `${base}/x`, `${base}/done`]);
  await watch.close();
  await driver.xenstoreWrite(`${base}/after`, '1');
  // A second connection's write is seen by a fresh watch here, proving the first one is gone.
  const other = await connectEmulatedDriver(emu.socketPath);
  try {
    await other.xenstoreWrite(`${base}/again`, '1');
    await waitForXenstore(driver, `${base}/again`, (v) => v === '1');
  } finally {
    await other.close();
  }
  assert.deepEqual(seen, [base, `${base}/x`, `${base}/done`], 'no event after close()');

  // @releaseDomain fires when a domain is destroyed; its home disappears.
  const released: string[] = [];
  const release = await driver.xenstoreWatch('@releaseDomain', (path) => released.push(path));
  await waitUntil(() => released.length === 1);
  await driver.destroy(domid);
  await waitUntil(() => released.length === 2);
  await release.close();
  assert.equal(await driver.xenstoreRead(`/local/domain/${domid}/name`), null);
  await assert.rejects(driver.xenstoreRead('no-slash'), isCode('EINVAL', /invalid xenstore path/));
  await assert.rejects(driver.xenstoreWatch('bad path', () => {}), isCode('EINVAL', /invalid xenstore path/));
});

/** Waits for a condition that watch events make true. */
async function waitUntil(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
