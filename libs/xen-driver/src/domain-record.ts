// From Xen's getdomaininfo record to the driver interface's DomainInfo: state, shutdown reason,
// guest type, UUID. Pure: the name and the p2m size come from other calls.

import type { DomainInfo, DomainState, GuestType, ShutdownReason } from '@ferry/hypervisor';
import type { RawDomainRecord } from './binding';
import { DomInfoFlag, SHUTDOWN_REASON_MASK, SHUTDOWN_REASON_SHIFT, ShutdownCode, X86_EMU_LAPIC } from './xen-constants';

/** What a DomainInfo needs besides the getdomaininfo record. */
export interface DomainExtras {
  /** xenstore /local/domain/<domid>/name (null when absent). */
  name: string | null;
  /** xc_domain_nr_gpfns. */
  p2mSize: number;
  /** Whether Ferry's log-dirty marker names this domain (see log-dirty-marker.ts). */
  logDirty: boolean;
}

/** A domain that is being destroyed: Xen still lists it until its last page is freed. */
export function isDying(record: RawDomainRecord): boolean {
  return (record.flags & DomInfoFlag.DYING) !== 0;
}

export function domainState(flags: number): DomainState {
  if (flags & DomInfoFlag.SHUTDOWN) return 'shutdown';
  if (flags & DomInfoFlag.PAUSED) return 'paused';
  return 'running';
}

export function shutdownReason(flags: number): ShutdownReason | null {
  if (!(flags & DomInfoFlag.SHUTDOWN)) return null;
  switch ((flags >>> SHUTDOWN_REASON_SHIFT) & SHUTDOWN_REASON_MASK) {
    case ShutdownCode.POWEROFF:
      return 'poweroff';
    case ShutdownCode.REBOOT:
    case ShutdownCode.SOFT_RESET: // the toolstack restarts the domain in place: a kind of reboot
      return 'reboot';
    case ShutdownCode.SUSPEND:
      return 'suspend';
    case ShutdownCode.WATCHDOG:
      return 'watchdog';
    default:
      return 'crash';
  }
}

/**
 * PV guests are not HVM containers; PVH guests are HVM containers that emulate nothing but the
 * local APIC (libxl creates them with XEN_X86_EMU_LAPIC only); anything emulating more is HVM.
 */
export function guestType(record: Pick<RawDomainRecord, 'flags' | 'emulationFlags'>): GuestType {
  if (!(record.flags & DomInfoFlag.HVM_GUEST)) return 'pv';
  return (record.emulationFlags & ~X86_EMU_LAPIC) === 0 ? 'pvh' : 'hvm';
}

/** xen_domain_handle_t → the canonical 8-4-4-4-12 lowercase form. */
export function uuidFromHandle(handle: Uint8Array): string {
  const hex = Buffer.from(handle.buffer, handle.byteOffset, handle.byteLength).toString('hex').padEnd(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Number of vCPUs the domain has (online or not): max_vcpu_id + 1. */
export function vcpuCount(maxVcpuId: number): number {
  return maxVcpuId === 0xffffffff ? 0 : maxVcpuId + 1;
}

export function toDomainInfo(record: RawDomainRecord, extras: DomainExtras): DomainInfo {
  return {
    domid: record.domid,
    name: extras.name ?? (record.domid === 0 ? 'Domain-0' : `domain-${record.domid}`),
    uuid: uuidFromHandle(record.handle),
    state: domainState(record.flags),
    shutdownReason: shutdownReason(record.flags),
    nrPages: record.totPages,
    maxPages: extras.p2mSize,
    // Xen's maxmem (libxl sets it to max_memkb plus a small slack): what the domain may use.
    memoryPages: Math.min(record.maxPages, extras.p2mSize) || record.maxPages,
    vcpus: vcpuCount(record.maxVcpuId),
    logDirty: extras.logDirty,
    guestType: guestType(record),
  };
}
