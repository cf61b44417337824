// The host process: it cleans up everything on SIGTERM and when its parent goes away, survives a
// guest that crashes or will not load and a client that speaks garbage, and refuses to share its
// socket with another host.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { connectEmulatedDriver, hostShmPrefix, type WorkloadSpec } from '@ferry/hypervisor';
import { listSharedMemory } from '@ferry/shm';
import { spawnEmuHost } from '../src/index';
import { SCRIPTED_KERNEL, WAIT_MS, guestCommand, isCode, scriptedReady, startHost, stopAllHosts, waitForDomain } from './helpers';
import { liveMappingCount } from '@ferry/shm';

const idle: WorkloadSpec = { kind: 'idle', seed: 1, freeFraction: 0.5 };

after(stopAllHosts);

test('SIGTERM destroys every domain, unlinks their shared memory and removes the socket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-emu-sigterm-'));
  const emu = await spawnEmuHost({ name: 'sigterm', dir, capacityBytes: 64 << 20, kernelModule: SCRIPTED_KERNEL });
  try {
    const driver = await connectEmulatedDriver(emu.socketPath);
    for (const name of ['a', 'b']) await scriptedReady(driver, await driver.createDomain({ name, maxPages: 256, workload: idle }));
    assert.equal(listSharedMemory(emu.shmPrefix).length, 4, 'a RAM and a meta object per domain');
    await driver.close();
  } finally {
    await emu.stop();
  }
  assert.deepEqual(await emu.exited, { code: 0, signal: null });
  assert.deepEqual(listSharedMemory(emu.shmPrefix), []);
  assert.equal(existsSync(emu.socketPath), false);
  rmSync(dir, { recursive: true, force: true });
});

test('with --exit-with-stdin the host cleans up and exits when its parent closes stdin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-emu-stdin-'));
  const child = spawn(
    process.execPath,
    ['--import', pathToFileURL(require.resolve('tsx')).href, join(__dirname, '..', 'src', 'main.ts'),
      '--name', 'orphan', '--dir', dir, '--capacity', '64MiB', '--kernel', SCRIPTED_KERNEL, '--exit-with-stdin'],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const exited = once(child, 'exit');
  try {
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    const ready = JSON.parse(line) as { ready: boolean; socket: string; pid: number };
    assert.equal(ready.ready, true);
    const driver = await connectEmulatedDriver(ready.socket);
    await scriptedReady(driver, await driver.createDomain({ name: 'left', maxPages: 256, workload: idle }));
    await driver.close();
    const prefix = hostShmPrefix('orphan', ready.pid);
    assert.equal(listSharedMemory(prefix).length, 2);
    child.stdin!.end(); // what happens when the parent dies
    const [code] = await exited;
    assert.equal(code, 0);
    assert.deepEqual(listSharedMemory(prefix), []);
    assert.equal(existsSync(ready.socket), false);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a guest kernel that cannot load fails createDomain with EIO and leaves nothing behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-emu-nokernel-'));
  const emu = await spawnEmuHost({ name: 'nokernel', dir, capacityBytes: 64 << 20, kernelModule: join(dir, 'no-such-kernel.ts') });
  try {
    const driver = await connectEmulatedDriver(emu.socketPath);
    await assert.rejects(driver.createDomain({ name: 'x', maxPages: 256, workload: idle }), isCode('EIO', /the guest failed to start: Cannot find module/));
    assert.deepEqual(await driver.listDomains(), []);
    const info = await driver.hostInfo();
    assert.equal(info.freePages, info.totalPages);
    assert.deepEqual(listSharedMemory(emu.shmPrefix), []);
    // The name is free again.
    await assert.rejects(driver.createDomain({ name: 'x', maxPages: 256, workload: idle }), isCode('EIO', /Cannot find module/));
    await driver.close();
  } finally {
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal((await emu.exited).code, 0);
});

test('a guest that throws crashes its domain only; the host and other domains carry on', async () => {
  const { driver } = await startHost({ name: 'crash' });
  const victim = await driver.createDomain({ name: 'victim', maxPages: 256, workload: idle });
  const bystander = await driver.createDomain({ name: 'bystander', maxPages: 256, workload: idle });
  await scriptedReady(driver, victim);
  await scriptedReady(driver, bystander);
  await guestCommand(driver, victim, 'crash');
  const info = await waitForDomain(driver, victim, (i) => i.state === 'shutdown', 'the crash');
  assert.equal(info.shutdownReason, 'crash');
  await assert.rejects(driver.unpause(victim), isCode('EBUSY', /shut down \(crash\)/));
  assert.ok(((await guestCommand(driver, bystander, 'ticks')) as number) >= 0);
  await driver.destroy(victim);
  await driver.destroy(bystander);
  const host = await driver.hostInfo();
  assert.equal(host.freePages, host.totalPages);
});

test('a second host on the same folder is refused; a client sending garbage is dropped', async () => {
  const first = await startHost({ name: 'owner' });
  await assert.rejects(
    spawnEmuHost({ name: 'intruder', dir: first.dir, capacityBytes: 64 << 20, kernelModule: SCRIPTED_KERNEL }),
    /another emulated host is already listening/,
  );
  const garbage = connect(first.process.socketPath);
  await once(garbage, 'connect');
  const closed = once(garbage, 'close');
  garbage.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4])); // a 4 GiB frame
  await closed;
  assert.equal((await first.driver.hostInfo()).name, 'owner', 'the host still serves others');
});

test('a driver releases its mapping of a domain that another process destroyed', async () => {
  const { driver, process: emu } = await startHost({ name: 'sweep' });
  const other = await connectEmulatedDriver(emu.socketPath); // stands for the host-agent
  try {
    const domid = await driver.createDomain({ name: 'gone', maxPages: 256, workload: idle });
    await scriptedReady(driver, domid);
    const before = liveMappingCount();
    const pages = await driver.mapForeignPages(domid, [0]);
    pages.unmap();
    assert.ok(liveMappingCount() > before, 'reading pages maps the domain');
    await other.destroy(domid);
    const deadline = Date.now() + WAIT_MS;
    while (liveMappingCount() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(liveMappingCount(), before, 'the mapping of the destroyed domain is gone');
  } finally {
    await other.close();
  }
});
