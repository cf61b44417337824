// Log-dirty mode as Xen's shadow op: ENABLE clears and starts tracking, CLEAN returns and resets,
// PEEK returns without resetting, FINAL is the last CLEAN of a domain that no longer runs, OFF
// stops tracking.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { bitmapPfns } from '@ferry/hypervisor';
import { currentCommandSeq, guestCommand, isCode, scriptedReady, startHost, stampOf, stopAllHosts, type TestHost } from './helpers';

let host: TestHost;
let domid: number;

before(async () => {
  host = await startHost({ name: 'logdirty' });
  domid = await host.driver.createDomain({ name: 'dirty', maxPages: 5000, workload: { kind: 'idle', seed: 1, freeFraction: 0.5 } });
  await scriptedReady(host.driver, domid);
});

after(stopAllHosts);

test('PEEK returns the bitmap without resetting it; CLEAN returns it and resets it', async () => {
  const { driver } = host;
  await driver.logDirtyEnable(domid);
  assert.equal((await driver.domainInfo(domid)).logDirty, true);
  const written = [0, 31, 32, 33, 1000, 4095, 4999];
  await guestCommand(driver, domid, 'write', written);

  const peek1 = await driver.logDirtyPeek(domid);
  assert.equal(peek1.bitmap.length, Math.ceil(5000 / 8));
  assert.deepEqual(bitmapPfns(peek1.bitmap), written);
  assert.deepEqual(peek1.stats, { dirtyCount: written.length, faultCount: written.length });
  const peek2 = await driver.logDirtyPeek(domid);
  assert.deepEqual(bitmapPfns(peek2.bitmap), written, 'a PEEK does not reset');

  const clean = await driver.logDirtyClean(domid);
  assert.deepEqual(bitmapPfns(clean.bitmap), written);
  assert.deepEqual(clean.stats, { dirtyCount: written.length, faultCount: written.length });
  const after = await driver.logDirtyClean(domid);
  assert.deepEqual(bitmapPfns(after.bitmap), [], 'CLEAN reset the bitmap');
  assert.deepEqual(after.stats, { dirtyCount: 0, faultCount: 0 });

  // Writes after a CLEAN show up in the next one, and only those.
  await guestCommand(driver, domid, 'write', [7, 8]);
  assert.deepEqual(bitmapPfns((await driver.logDirtyClean(domid)).bitmap), [7, 8]);
  await driver.logDirtyDisable(domid);
});

test('ENABLE starts from an empty bitmap; OFF stops tracking; state errors are EBUSY', async () => {
  const { driver } = host;
  await assert.rejects(driver.logDirtyClean(domid), isCode('EBUSY', /not enabled/));
  await assert.rejects(driver.logDirtyPeek(domid), isCode('EBUSY', /not enabled/));
  await guestCommand(driver, domid, 'write', [5]); // tracking is off: not recorded
  await driver.logDirtyEnable(domid);
  await assert.rejects(driver.logDirtyEnable(domid), isCode('EBUSY', /already enabled/));
  assert.deepEqual(bitmapPfns((await driver.logDirtyPeek(domid)).bitmap), []);
  await guestCommand(driver, domid, 'write', [6]);
  await driver.logDirtyDisable(domid);
  assert.equal((await driver.domainInfo(domid)).logDirty, false);
  await guestCommand(driver, domid, 'write', [9]);
  await driver.logDirtyEnable(domid);
  assert.deepEqual(bitmapPfns((await driver.logDirtyPeek(domid)).bitmap), [], 'ENABLE cleared the old bitmap');
  await driver.logDirtyDisable(domid);
});

test('FINAL is refused while the domain runs and works when it is paused or suspended', async () => {
  const { driver } = host;
  await driver.logDirtyEnable(domid);
  await guestCommand(driver, domid, 'write', [10, 11]);
  await assert.rejects(driver.logDirtyClean(domid, { final: true }), isCode('EBUSY', /running/));

  await driver.pause(domid);
  const final = await driver.logDirtyClean(domid, { final: true });
  assert.deepEqual(bitmapPfns(final.bitmap), [10, 11]);
  await driver.unpause(domid);

  await guestCommand(driver, domid, 'write', [12]);
  const seq = currentCommandSeq();
  await driver.suspend(domid);
  const suspendedFinal = await driver.logDirtyClean(domid, { final: true });
  assert.deepEqual(bitmapPfns(suspendedFinal.bitmap), [12]);
  // What FINAL reported is really in memory: read it through the foreign mapping.
  const pages = await driver.mapForeignPages(domid, [12]);
  assert.equal(pages.data.readInt32LE(0), stampOf(12, seq));
  pages.unmap();
  await driver.resumeSuspended(domid);
  await driver.logDirtyDisable(domid);
});
