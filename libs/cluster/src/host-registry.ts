// The host registry: every host-agent keeps its host's entry (its four service addresses, driver,
// capacity) alive in a NATS KV bucket with a TTL; an entry whose heartbeats stop expires, so the
// coordinator only sees hosts that are up.

import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { bucketKeys } from './kv-keys';

export const HOST_BUCKET = 'ferry_hosts';
/** An entry not refreshed for this long disappears. */
export const HOST_TTL_MS = 15_000;

export interface HostRecord {
  name: string;
  driver: 'emulated' | 'xen';
  hostAgent: string;
  memoryTracker: string;
  balloonManager: string;
  pageStreamer: string;
  totalPages: number;
  freePages: number;
  ferryVersion: string;
  /** When the entry was last refreshed (ISO 8601). */
  heartbeatAt: string;
}

async function bucket(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(HOST_BUCKET, { ttl: HOST_TTL_MS, history: 1 });
}

/** Registers the host and refreshes it every third of the TTL until `stop()`. */
export async function registerHost(
  nc: NatsConnection,
  record: () => Promise<Omit<HostRecord, 'heartbeatAt'>>,
  onError: (err: unknown) => void = () => {},
): Promise<{ stop(): Promise<void> }> {
  const kv = await bucket(nc);
  const put = async () => {
    const r = await record();
    await kv.put(r.name, JSON.stringify({ ...r, heartbeatAt: new Date().toISOString() }));
    return r.name;
  };
  const name = await put();
  const timer = setInterval(() => put().catch(onError), HOST_TTL_MS / 3);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await kv.delete(name).catch(() => {});
    },
  };
}

export async function listHosts(nc: NatsConnection): Promise<HostRecord[]> {
  const kv = await bucket(nc);
  const out: HostRecord[] = [];
  for (const key of await bucketKeys(nc, HOST_BUCKET)) {
    const e = await kv.get(key);
    if (e && e.operation === 'PUT') out.push(JSON.parse(e.string()) as HostRecord);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function getHost(nc: NatsConnection, name: string): Promise<HostRecord | undefined> {
  const kv = await bucket(nc);
  const e = await kv.get(name);
  return e && e.operation === 'PUT' ? (JSON.parse(e.string()) as HostRecord) : undefined;
}
