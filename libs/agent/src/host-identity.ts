// Who this host is: its name, Ferry version, the addresses of its four services, and what the
// hypervisor reports (driver, Xen version, capacity). The same facts feed GetHostInfo, pre-flight
// and the host's entry in the cluster registry.

import type { HostRecord } from '@ferry/cluster';
import type { HostInfo } from '@ferry/hypervisor';
import { HostDriver, type Host, type HostEndpoints } from '@ferry/proto';
import { version } from '../../../package.json';

/** Ferry's version: the repository's (every package of the suite ships together). */
export const FERRY_VERSION: string = version;

export interface HostIdentity {
  name: string;
  ferryVersion: string;
  /** hostAgent is this agent's own address, known once its server listens. */
  endpoints: HostEndpoints;
}

export function toHostDriver(kind: HostInfo['driver']): HostDriver {
  return kind === 'xen' ? HostDriver.HOST_DRIVER_XEN : HostDriver.HOST_DRIVER_EMULATED;
}

export function describeHost(identity: HostIdentity, info: HostInfo): Host {
  return {
    name: identity.name,
    driver: toHostDriver(info.driver),
    xenVersion: { major: info.xenVersion.major, minor: info.xenVersion.minor },
    totalPages: BigInt(info.totalPages),
    freePages: BigInt(info.freePages),
    ferryVersion: identity.ferryVersion,
    endpoints: { ...identity.endpoints },
  };
}

/** The host's entry in the ferry_hosts bucket (without the heartbeat time registerHost adds). */
export function toHostRecord(identity: HostIdentity, info: HostInfo): Omit<HostRecord, 'heartbeatAt'> {
  return {
    name: identity.name,
    driver: info.driver,
    hostAgent: identity.endpoints.hostAgent,
    memoryTracker: identity.endpoints.memoryTracker,
    balloonManager: identity.endpoints.balloonManager,
    pageStreamer: identity.endpoints.pageStreamer,
    totalPages: info.totalPages,
    freePages: info.freePages,
    ferryVersion: identity.ferryVersion,
  };
}
