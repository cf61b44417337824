// The vCPU: pause parks the guest (no code runs, not even its network handlers) and unpause lets it
// go on; the suspend handshake over control/shutdown, its timeout, and resuming in place.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { xsPaths } from '@ferry/hypervisor';
import { guestCommand, home, isCode, scriptedReady, startHost, stopAllHosts, waitForXenstore, type TestHost } from './helpers';

let host: TestHost;

before(async () => {
  host = await startHost({ name: 'vcpu' });
});

after(stopAllHosts);

async function newDomain(name: string): Promise<number> {
  const domid = await host.driver.createDomain({ name, maxPages: 1024, workload: { kind: 'idle', seed: 3, freeFraction: 0.5 } });
  await scriptedReady(host.driver, domid);
  return domid;
}

function ticksOf(context: Uint8Array): number {
  return (JSON.parse(Buffer.from(context).toString('utf8')) as { ticks: number }).ticks;
}

/** Connects to the guest's NIC and sends one PING; resolves with the reply line. */
function ping(address: string): { sent: Promise<void>; reply: Promise<string> } {
  const [hostPart, port] = address.split(':');
  const socket = connect({ host: hostPart, port: Number(port) });
  socket.setEncoding('utf8');
  const sent = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write('PING\n', () => resolve()));
    socket.once('error', reject);
  });
  const reply = new Promise<string>((resolve, reject) => {
    let buffer = '';
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.includes('\n')) {
        socket.destroy();
        resolve(buffer.trim());
      }
    });
    socket.once('error', reject);
  });
  return { sent, reply };
}

test('a paused guest runs nothing until it is unpaused', async () => {
  const { driver } = host;
  const domid = await newDomain('pause');
  await assert.rejects(driver.getVcpuContext(domid), isCode('EBUSY', /running/));
  await driver.pause(domid);
  await driver.pause(domid); // pausing a paused domain is harmless
  assert.equal((await driver.domainInfo(domid)).state, 'paused');
  const ticks = ticksOf(await driver.getVcpuContext(domid));

  // A request reaches the guest's NIC while it is paused: it is answered only after unpause.
  const address = (await driver.xenstoreRead(xsPaths.serviceAddress(domid)))!;
  const request = ping(address);
  await request.sent;
  let unpaused = false;
  const reply = request.reply.then((line) => ({ line, unpaused }));
  assert.equal(ticksOf(await driver.getVcpuContext(domid)), ticks, 'the vCPU did not move while paused');
  await assert.rejects(driver.suspend(domid), isCode('EBUSY', /paused/));

  unpaused = true;
  await driver.unpause(domid);
  await driver.unpause(domid); // unpausing a running domain is harmless
  const answered = await reply;
  assert.equal(answered.unpaused, true, 'the network handler ran only after unpause');
  assert.match(answered.line, /^PONG \d+$/);
  assert.ok(Number(answered.line.split(' ')[1]) >= ticks);
  assert.equal((await driver.domainInfo(domid)).state, 'running');
  await driver.destroy(domid);
});

test('suspend: "suspend" on control/shutdown, the guest acknowledges with "", then shuts down with reason suspend', async () => {
  const { driver } = host;
  const domid = await newDomain('suspend');
  const released: string[] = [];
  const release = await driver.xenstoreWatch('@releaseDomain', (p) => released.push(p));

  await driver.suspend(domid, { timeoutMs: 60_000 });
  const info = await driver.domainInfo(domid);
  assert.equal(info.state, 'shutdown');
  assert.equal(info.shutdownReason, 'suspend');
  // The scripted guest suspends only after reading "suspend" and writing "" back.
  assert.equal(await driver.xenstoreRead(xsPaths.controlShutdown(domid)), '', 'the guest acknowledged');
  assert.ok(released.length >= 2, '@releaseDomain fired for the shutdown');
  await release.close();

  // Suspended: its context can be read, it cannot be paused, and suspending again is a no-op.
  const ticks = ticksOf(await driver.getVcpuContext(domid));
  await assert.rejects(driver.pause(domid), isCode('EBUSY', /shut down \(suspend\)/));
  await driver.suspend(domid);

  // Resume in place (a cancelled migration): suspend() returns 1 and the guest carries on.
  await driver.resumeSuspended(domid);
  assert.equal((await driver.domainInfo(domid)).state, 'running');
  assert.equal(await waitForXenstore(driver, home(domid, 'test/suspend-result'), (v) => v !== null), '1');
  await assert.rejects(driver.resumeSuspended(domid), isCode('EBUSY', /not suspended/));
  const address = (await waitForXenstore(driver, xsPaths.serviceAddress(domid), (v) => v !== null))!;
  assert.match(await ping(address).reply, /^PONG \d+$/);
  assert.ok((await guestCommand(driver, domid, 'ticks')) as number >= ticks);
  await driver.destroy(domid);
});

test('a guest that never acknowledges makes suspend fail with ETIMEDOUT, and the request is withdrawn', async () => {
  const { driver } = host;
  const domid = await newDomain('nosuspend');
  await driver.xenstoreWrite(home(domid, 'test/ignore-suspend'), '1');
  await assert.rejects(driver.suspend(domid, { timeoutMs: 1000 }), isCode('ETIMEDOUT', /did not acknowledge/));
  assert.equal(await driver.xenstoreRead(xsPaths.controlShutdown(domid)), '', 'the request was cancelled');
  assert.equal((await driver.domainInfo(domid)).state, 'running');
  await driver.destroy(domid);
});

test('a guest that acknowledges the suspend request but does not suspend makes suspend fail with ETIMEDOUT', async () => {
  const { driver } = host;
  const domid = await newDomain('staysup');
  await driver.xenstoreWrite(home(domid, 'test/after-suspend-ack'), 'stay');
  await assert.rejects(driver.suspend(domid, { timeoutMs: 1000 }), isCode('ETIMEDOUT', /acknowledged the suspend request but did not suspend/));
  assert.equal((await driver.domainInfo(domid)).state, 'running');
  await driver.destroy(domid);
});

test('a guest that powers off instead of suspending makes suspend fail with EBUSY and the reason', async () => {
  const { driver } = host;
  const domid = await newDomain('poweroff');
  await driver.xenstoreWrite(home(domid, 'test/after-suspend-ack'), 'poweroff');
  await assert.rejects(driver.suspend(domid, { timeoutMs: 10_000 }), isCode('EBUSY', /shut down with reason poweroff instead of suspending/));
  const info = await driver.domainInfo(domid);
  assert.equal(info.state, 'shutdown');
  assert.equal(info.shutdownReason, 'poweroff');
  await driver.destroy(domid);
});

/** The host process's open descriptors of this domain's memory objects (RAM and meta). */
function memoryDescriptors(domid: number): string[] {
  const dir = `/proc/${host.process.pid}/fd`;
  const marker = `${host.process.shmPrefix.replace(/^\//, '')}d${domid}-`;
  const links: string[] = [];
  for (const fd of readdirSync(dir)) {
    try {
      const target = readlinkSync(`${dir}/${fd}`);
      if (target.includes(marker)) links.push(target);
    } catch {
      // closed between the listing and the read
    }
  }
  return links;
}

test('destroying a domain closes every descriptor of its memory, whatever state its vCPU is in', async () => {
  const { driver } = host;
  const running = await newDomain('fd-running');
  const paused = await newDomain('fd-paused');
  await driver.pause(paused);
  const suspended = await newDomain('fd-suspended');
  await driver.suspend(suspended, { timeoutMs: 60_000 });
  // A restore domain keeps a standby vCPU ready for its first unpause.
  const standby = await driver.createRestoreDomain({ name: 'fd-standby', maxPages: 1024, vcpus: 1 });
  for (const domid of [running, paused, suspended, standby]) {
    assert.ok(memoryDescriptors(domid).length > 0, `domain ${domid} has its memory open while it exists`);
  }
  for (const domid of [running, paused, suspended, standby]) {
    await driver.destroy(domid);
    // Otherwise the unlinked objects keep their memory until the host exits (/dev/shm fills up).
    assert.deepEqual(memoryDescriptors(domid), [], `domain ${domid}: descriptors left after destroy`);
  }
});
