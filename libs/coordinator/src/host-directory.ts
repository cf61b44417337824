// The hosts of the cluster as the coordinator reaches them: names resolved through the host
// registry (NATS KV, kept alive by each host-agent), one gRPC channel per service address, reused.
// A host that re-registers with new addresses (its services restarted) is picked up by
// resolving it again (`refresh`).

import { credentials } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import { getHost, listHosts, type HostRecord } from '@ferry/cluster';
import { BalloonManagerClient, HostAgentClient, MemoryTrackerClient, PageStreamerClient } from '@ferry/proto';
import { GRPC_MESSAGE_LIMITS, notFound } from '@ferry/runtime';

export interface HostClients {
  name: string;
  record: HostRecord;
  agent: HostAgentClient;
  tracker: MemoryTrackerClient;
  balloon: BalloonManagerClient;
  streamer: PageStreamerClient;
}

type AnyClient = HostAgentClient | MemoryTrackerClient | BalloonManagerClient | PageStreamerClient;

export class HostDirectory {
  private readonly channels = new Map<string, AnyClient>();
  private readonly resolved = new Map<string, HostClients>();

  constructor(private readonly nc: NatsConnection) {}

  /** Every registered host, by name. */
  list(): Promise<HostRecord[]> {
    return listHosts(this.nc);
  }

  /** The registry entry of a host, or undefined when it is not registered (or expired). */
  lookup(name: string): Promise<HostRecord | undefined> {
    return getHost(this.nc, name);
  }

  /** Clients for a host; NOT_FOUND (HOST_NOT_FOUND) when it is not registered. */
  async get(name: string, opts: { refresh?: boolean } = {}): Promise<HostClients> {
    const cached = this.resolved.get(name);
    if (cached && !opts.refresh) return cached;
    const record = await this.lookup(name);
    if (!record) throw notFound('HOST_NOT_FOUND', `host "${name}" is not registered in the cluster`);
    return this.clientsFor(record);
  }

  clientsFor(record: HostRecord): HostClients {
    const clients: HostClients = {
      name: record.name,
      record,
      agent: this.channel('agent', record.hostAgent, HostAgentClient),
      tracker: this.channel('tracker', record.memoryTracker, MemoryTrackerClient),
      balloon: this.channel('balloon', record.balloonManager, BalloonManagerClient),
      streamer: this.channel('streamer', record.pageStreamer, PageStreamerClient),
    };
    this.resolved.set(record.name, clients);
    return clients;
  }

  private channel<C extends AnyClient>(kind: string, address: string, Ctor: new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options: object) => C): C {
    const key = `${kind}@${address}`;
    let client = this.channels.get(key) as C | undefined;
    if (!client) {
      client = new Ctor(address, credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
      this.channels.set(key, client);
    }
    return client;
  }

  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
    this.resolved.clear();
  }
}
