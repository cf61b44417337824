// Listing keys while they are being written (hosts heartbeat their registry entries every few
// seconds), against a real nats-server: each key is named once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { bucketKeys, listHosts, registerHost, type HostRecord } from '../src';
import { startNats, type NatsFixture } from '@ferry/testing';

describe('KV keys listed while they are written', { timeout: 120_000 }, () => {
  let nats: NatsFixture;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats();
    nc = await nats.connect();
  });

  after(async () => {
    await nats?.stop();
  });

  test('bucketKeys names every key exactly once while a writer keeps rewriting them', async () => {
    const kv = await new Kvm(nc).create('keys_race', { history: 1 });
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const n of names) await kv.put(n, '0');
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await kv.put(names[i % names.length], String(i));
    })();
    try {
      // KV.keys() repeats rewritten keys in most of these listings and misses one now and then.
      for (let i = 0; i < 100; i++) assert.deepEqual((await bucketKeys(nc, 'keys_race')).sort(), names);
    } finally {
      writing = false;
      await writer;
    }
  });

  test('listHosts lists each host once while the hosts heartbeat', async () => {
    const record = (name: string) => async (): Promise<Omit<HostRecord, 'heartbeatAt'>> => ({
      name,
      driver: 'emulated',
      hostAgent: `${name}:7001`,
      memoryTracker: `${name}:7002`,
      balloonManager: `${name}:7003`,
      pageStreamer: `${name}:7004`,
      totalPages: 1024,
      freePages: 1024,
      ferryVersion: 'test',
    });
    const hosts = await Promise.all(['host-a', 'host-b'].map((n) => registerHost(nc, record(n))));
    const kv = await new Kvm(nc).create('ferry_hosts', { ttl: 15_000, history: 1 });
    let beating = true;
    // Heartbeats far more often than the real ones, so listings overlap them.
    const heartbeats = (async () => {
      for (let i = 0; beating; i++) {
        const name = i % 2 === 0 ? 'host-a' : 'host-b';
        await kv.put(name, JSON.stringify({ ...(await record(name)()), heartbeatAt: new Date().toISOString() }));
      }
    })();
    try {
      for (let i = 0; i < 100; i++) assert.deepEqual((await listHosts(nc)).map((h) => h.name), ['host-a', 'host-b']);
    } finally {
      beating = false;
      await heartbeats;
      for (const h of hosts) await h.stop();
    }
  });
});
