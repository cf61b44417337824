import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { KvClient, KvError, LoadGenerator } from '../src';
import { bootGuest } from './support/guest-harness';

describe('kv service and client', { timeout: 60_000 }, () => {
  it('speaks the line protocol and rejects bad requests with reasons', async (t) => {
    const { platform, kernel } = await bootGuest({ kind: 'kv', seed: 81, freeFraction: 0.5 }, 2048);
    t.after(() => kernel.halt());
    const address = (await platform.xenstore.waitFor('data/service-address', (v) => v !== null)) as string;
    const c = await KvClient.connect(address);
    t.after(() => c.close());
    await c.ping();
    await c.set('k', 'a value with spaces');
    assert.equal(await c.get('k'), 'a value with spaces');
    await c.set('k', '');
    assert.equal(await c.get('k'), '');
    assert.equal(await c.get('missing'), null);
    assert.equal(await c.del('k'), true);
    assert.equal(await c.del('k'), false);
    assert.equal(await c.get('i7') !== null, true, 'the built-in data is visible too');
    assert.equal(await c.request('FROB'), 'ERR unknown command');
    assert.match(await c.request(`SET ${'x'.repeat(65)} v`), /^ERR key longer/);
    assert.match(await c.request(`SET k ${'v'.repeat(417)}`), /^ERR value longer/);
    await assert.rejects(c.set('a b', 'v'), KvError);
    const stats = await c.stats();
    assert.equal(stats.errors, 0);
    assert.ok(stats.external_sets >= 2);
    // Pipelined requests are answered in order.
    const replies = await Promise.all([c.set('p1', '1'), c.set('p2', '2'), c.get('p1'), c.get('p2')]);
    assert.deepEqual(replies.slice(2), ['1', '2']);
  });

  it('the load generator finds writes the guest lost, and follows the guest to a new address', async (t) => {
    const { platform, kernel } = await bootGuest({ kind: 'kv', seed: 82, freeFraction: 0.5 }, 2048);
    t.after(() => kernel.halt());
    await platform.xenstore.waitFor('data/service-address', (v) => v !== null);
    const load = new LoadGenerator({ resolveAddress: () => platform.xenstore.values.get('data/service-address') ?? null, writeRate: 300, reconnectDelayMs: 10 });
    load.start();
    t.after(() => load.stop());
    await load.whenAcked(30);

    // Move the service: a cancelled suspend closes connections and listens on a new port.
    const before = platform.xenstore.values.get('data/service-address');
    platform.xenstore.set('control/shutdown', 'suspend', false);
    await platform.whenSuspended();
    platform.answerSuspend(1);
    await platform.xenstore.waitFor('data/service-address', (v) => v !== null && v !== before);
    const acked = load.stats().acked_writes;
    await load.whenAcked(acked + 30);
    await load.stop();
    const s = load.stats();
    assert.ok(s.reconnects >= 1, JSON.stringify(s));
    assert.ok(s.requests > s.acked_writes, 'reads were mixed in');
    assert.equal(s.wrong_reads, 0);

    // Lose one acknowledged write behind the generator's back: verify() must notice.
    const c = await KvClient.connect(platform.xenstore.values.get('data/service-address') as string);
    assert.equal(await c.del(load.keyOf(3)), true);
    c.close();
    const verified = await load.verify();
    assert.equal(verified.lost_writes, 1);
  });

  it('a request without a reply times out and closes the connection', async (t) => {
    const silent = createServer((s) => s.on('data', () => {})); // reads, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => silent.close(() => r())));
    const port = (silent.address() as { port: number }).port;
    const c = await KvClient.connect(`127.0.0.1:${port}`, { requestTimeoutMs: 100 });
    await assert.rejects(c.ping(), (e: KvError) => e.code === 'ETIMEDOUT');
    assert.equal(c.closed, true);
    await assert.rejects(KvClient.connect('nonsense'), /bad address/);
  });
});
