// The read-mostly part of the public API: hosts (registry + each agent's own report), domains
// across hosts, creating a domain on a named host, and finding the host a domain runs on.

import { status } from '@grpc/grpc-js';
import { HOST_TTL_MS, type HostRecord } from '@ferry/cluster';
import {
  HostDriver,
  type CreateDomainRequest,
  type CreateDomainResponse,
  type Domain,
  type Host,
  type HostStatus,
  type ListDomainsResponse,
} from '@ferry/proto';
import { invalidArgument, isServiceError, notFound, unavailable } from '@ferry/runtime';
import { describeError } from './failures';
import { unaryCall } from './grpc-unary';
import type { HostDirectory } from './host-directory';

export interface MigrationCounts {
  outbound(host: string): number;
  inbound(host: string): number;
}

/** What the registry says about a host, when its agent does not answer. */
export function hostFromRecord(r: HostRecord): Host {
  return {
    name: r.name,
    driver: r.driver === 'xen' ? HostDriver.HOST_DRIVER_XEN : HostDriver.HOST_DRIVER_EMULATED,
    xenVersion: undefined,
    totalPages: BigInt(r.totalPages),
    freePages: BigInt(r.freePages),
    ferryVersion: r.ferryVersion,
    endpoints: { hostAgent: r.hostAgent, memoryTracker: r.memoryTracker, balloonManager: r.balloonManager, pageStreamer: r.pageStreamer },
  };
}

export class ClusterQueries {
  constructor(
    private readonly hosts: HostDirectory,
    private readonly deadlineMs: number,
  ) {}

  /** Every registered host; ready = heartbeat within the TTL and the agent answered. */
  async listHosts(counts: MigrationCounts): Promise<HostStatus[]> {
    const records = await this.hosts.list();
    return Promise.all(
      records.map(async (r): Promise<HostStatus> => {
        const c = this.hosts.clientsFor(r);
        let host: Host | undefined;
        try {
          host = (await unaryCall(c.agent.getHostInfo, c.agent, {}, { deadlineMs: this.deadlineMs })).host;
        } catch {
          host = undefined;
        }
        const heartbeat = new Date(r.heartbeatAt);
        const fresh = Date.now() - heartbeat.getTime() <= HOST_TTL_MS;
        return {
          host: host ?? hostFromRecord(r),
          lastHeartbeat: heartbeat,
          ready: fresh && host !== undefined,
          outboundMigrations: counts.outbound(r.name),
          inboundMigrations: counts.inbound(r.name),
        };
      }),
    );
  }

  /** Domains of one host (NOT_FOUND when unknown) or of every host; silent hosts are listed. */
  async listDomains(hostName: string): Promise<ListDomainsResponse> {
    let records: HostRecord[];
    if (hostName) {
      const r = await this.hosts.lookup(hostName);
      if (!r) throw notFound('HOST_NOT_FOUND', `host "${hostName}" is not registered in the cluster`);
      records = [r];
    } else {
      records = await this.hosts.list();
    }
    const unreachableHosts: string[] = [];
    const perHost = await Promise.all(
      records.map(async (r) => {
        const c = this.hosts.clientsFor(r);
        try {
          const res = await unaryCall(c.agent.listDomains, c.agent, {}, { deadlineMs: this.deadlineMs });
          return res.domains.map((d) => ({ ...d, host: d.host || r.name }));
        } catch {
          unreachableHosts.push(r.name);
          return [];
        }
      }),
    );
    const domains = perHost.flat().sort((a, b) => (a.host === b.host ? a.domid - b.domid : a.host < b.host ? -1 : 1));
    return { domains, unreachableHosts: unreachableHosts.sort() };
  }

  /** Forwards to the named host's agent; its answer (and error status) is passed through. */
  async createDomain(req: CreateDomainRequest, deadlineMs: number): Promise<CreateDomainResponse> {
    if (!req.host) throw invalidArgument('MISSING_FIELD', 'host is required');
    if (!req.spec) throw invalidArgument('MISSING_FIELD', 'spec is required');
    if (!req.spec.name) throw invalidArgument('MISSING_FIELD', 'spec.name is required');
    const c = await this.hosts.get(req.host);
    try {
      const res = await unaryCall(c.agent.createDomain, c.agent, { spec: req.spec }, { deadlineMs });
      return { domain: res.domain ? { ...res.domain, host: res.domain.host || req.host } : undefined };
    } catch (err) {
      if (isServiceError(err) && err.code === status.UNAVAILABLE) throw unavailable('HOST_UNREACHABLE', `host ${req.host}: ${describeError(err)}`);
      throw err;
    }
  }

  /** The domain `name` on `hostName`: NOT_FOUND (DOMAIN_NOT_FOUND), UNAVAILABLE when the host is silent. */
  async domainOn(hostName: string, name: string): Promise<Domain> {
    const c = await this.hosts.get(hostName);
    try {
      const res = await unaryCall(c.agent.getDomain, c.agent, { selector: { $case: 'name', name } }, { deadlineMs: this.deadlineMs });
      if (!res.domain) throw notFound('DOMAIN_NOT_FOUND', `no domain "${name}" on host ${hostName}`);
      return { ...res.domain, host: res.domain.host || hostName };
    } catch (err) {
      if (isServiceError(err) && err.code === status.NOT_FOUND) throw notFound('DOMAIN_NOT_FOUND', `no domain "${name}" on host ${hostName}`);
      if (isServiceError(err) && err.code === status.UNAVAILABLE) throw unavailable('HOST_UNREACHABLE', `host ${hostName}: ${describeError(err)}`);
      throw err;
    }
  }

  /** Every domain called `name` across the cluster, and the hosts that did not answer. */
  async findDomains(name: string): Promise<{ found: Domain[]; unreachableHosts: string[] }> {
    const { domains, unreachableHosts } = await this.listDomains('');
    return { found: domains.filter((d) => d.name === name), unreachableHosts };
  }
}
