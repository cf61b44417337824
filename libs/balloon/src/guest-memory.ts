// A guest's memory figures, from the hypervisor (populated pages) and xenstore (static-max and
// the balloon target, both in KiB, and the free memory the guest's agent reports in
// data/meminfo_free), in pages.

import { HypervisorError, kibToPages, xsPaths, type DomainInfo, type HypervisorDriver } from '@ferry/hypervisor';
import type { GuestMemory } from '@ferry/proto';
import { notFound } from '@ferry/runtime';

export interface GuestMemoryFigures {
  domid: number;
  staticMaxPages: number;
  targetPages: number;
  populatedPages: number;
  /** Free pages the guest reports; null when it reports none. */
  guestFreePages: number | null;
  info: DomainInfo;
}

/** A xenstore KiB figure ("131072"), or null when absent or not a whole number. */
export function parseKiB(value: string | null): number | null {
  if (value === null) return null;
  const text = value.trim();
  return /^\d+$/.test(text) ? Number(text) : null;
}

/** The domain's info; NOT_FOUND (reason DOMAIN_NOT_FOUND) when there is no such domain. */
export async function domainInfoOrNotFound(driver: HypervisorDriver, domid: number): Promise<DomainInfo> {
  try {
    return await driver.domainInfo(domid);
  } catch (err) {
    if (err instanceof HypervisorError && err.code === 'ESRCH') throw notFound('DOMAIN_NOT_FOUND', `no domain ${domid} on this host`);
    throw err;
  }
}

export async function readGuestMemory(driver: HypervisorDriver, domid: number): Promise<GuestMemoryFigures> {
  const info = await domainInfoOrNotFound(driver, domid);
  const [staticMax, target, free] = await Promise.all([
    driver.xenstoreRead(xsPaths.memoryStaticMax(domid)),
    driver.xenstoreRead(xsPaths.memoryTarget(domid)),
    driver.xenstoreRead(xsPaths.meminfoFree(domid)),
  ]);
  const staticMaxKiB = parseKiB(staticMax);
  const staticMaxPages = staticMaxKiB === null ? info.maxPages : kibToPages(staticMaxKiB);
  const targetKiB = parseKiB(target);
  const freeKiB = parseKiB(free);
  return {
    domid,
    staticMaxPages,
    targetPages: targetKiB === null ? staticMaxPages : kibToPages(targetKiB),
    populatedPages: info.nrPages,
    guestFreePages: freeKiB === null ? null : kibToPages(freeKiB),
    info,
  };
}

export function toGuestMemory(f: GuestMemoryFigures, frozenBy: string | undefined): GuestMemory {
  return {
    domid: f.domid,
    staticMaxPages: BigInt(f.staticMaxPages),
    targetPages: BigInt(f.targetPages),
    populatedPages: BigInt(f.populatedPages),
    guestFreePages: BigInt(f.guestFreePages ?? 0),
    guestFreeReported: f.guestFreePages !== null,
    frozen: frozenBy !== undefined,
    frozenBy: frozenBy ?? '',
  };
}
