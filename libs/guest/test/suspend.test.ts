import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvClient } from '../src';
import { bootGuest, turns, waitForOps } from './support/guest-harness';

describe('suspend handshake (control/shutdown)', { timeout: 60_000 }, () => {
  it('acknowledges, stops at a clean point, suspends, and carries on in place when cancelled', async (t) => {
    const { platform, kernel } = await bootGuest({ kind: 'kv', seed: 71, freeFraction: 0.5, writeRate: 2000 }, 4096);
    t.after(() => kernel.halt());
    assert.equal(await platform.xenstore.waitFor('control/feature-suspend', (v) => v === '1'), '1');
    const address = (await platform.xenstore.waitFor('data/service-address', (v) => v !== null)) as string;
    const client = await KvClient.connect(address);
    await client.set('before', 'suspend');
    await waitForOps(kernel, 0);

    const writesBefore = platform.xenstore.writes.length;
    platform.xenstore.set('control/shutdown', 'suspend', false);
    await platform.whenSuspended();
    const guestWrites = platform.xenstore.writes.slice(writesBefore);
    assert.ok(guestWrites.some((w) => w.path === 'control/shutdown' && w.value === ''), 'the guest acknowledged by writing ""');
    assert.equal(platform.suspendCalls, 1);

    // Suspended: connections are closed, the service is gone and nothing touches memory.
    await assert.rejects(client.get('before'), /closed|failed/);
    await assert.rejects(KvClient.connect(address), /ECONNREFUSED|failed/);
    const ops = kernel.guest!.os.ops;
    platform.logDirtyEnable();
    await turns(200);
    assert.equal(kernel.guest!.os.ops, ops, 'no operations while suspended');
    assert.deepEqual(platform.logDirtyClean(), [], 'no page written while suspended');

    // Cancelled (1): the guest listens again, republishes its address and goes on.
    const addressWrites = platform.xenstore.writes.filter((w) => w.path === 'data/service-address').length;
    platform.answerSuspend(1);
    await platform.xenstore.waitFor('data/service-address', () => platform.xenstore.writes.filter((w) => w.path === 'data/service-address').length > addressWrites);
    const again = await KvClient.connect(platform.xenstore.values.get('data/service-address') as string);
    t.after(() => again.close());
    assert.equal(await again.get('before'), 'suspend');
    await waitForOps(kernel, ops);
    assert.equal(kernel.guest!.os.errors, 0);
    assert.ok(platform.logDirtyClean().length > 0, 'running again');
    platform.logDirtyDisable();

    // A second suspend works the same way; resolved with 0 the guest also carries on.
    platform.xenstore.set('control/shutdown', 'suspend', false);
    await platform.whenSuspended();
    assert.equal(platform.suspendCalls, 2);
    platform.answerSuspend(0);
    await waitForOps(kernel, kernel.guest!.os.ops);
    assert.equal(kernel.guest!.verifyAll(), 0);
  });

  it('parks at the pause point while paused', async (t) => {
    const { platform, kernel } = await bootGuest({ kind: 'memtest', seed: 72, freeFraction: 0.5 }, 2048);
    t.after(() => kernel.halt());
    await waitForOps(kernel, 0);
    platform.pause();
    await turns(5); // the batch in flight reaches its next pause point
    const ops = kernel.guest!.os.ops;
    platform.logDirtyEnable();
    await turns(200);
    assert.equal(kernel.guest!.os.ops, ops);
    assert.deepEqual(platform.logDirtyClean(), []);
    platform.unpause();
    await waitForOps(kernel, ops);
    assert.ok(platform.logDirtyClean().length > 0);
  });

  it('powers off on "poweroff" and ignores unknown commands', async () => {
    const { platform, kernel } = await bootGuest({ kind: 'idle', seed: 73, freeFraction: 0.5 }, 1024);
    platform.xenstore.set('control/shutdown', 'dance', false);
    await turns(20);
    assert.equal(platform.shutdownReason, null);
    platform.xenstore.set('control/shutdown', 'poweroff', false);
    await platform.whenShutdown();
    assert.deepEqual(platform.shutdownReason as unknown, { reason: 'poweroff', message: undefined });
    assert.equal(platform.xenstore.values.get('control/shutdown'), '');
    await kernel.halt();
  });
});
