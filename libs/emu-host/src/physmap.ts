// The two reservation hypercalls, on a domain's shared memory and the host's free-page counter:
// XENMEM_populate_physmap and XENMEM_decrease_reservation. The guest worker calls them for its
// balloon driver; the host's main thread calls populate for a restore's writePages.
//
// Invariant: an unpopulated pfn is a hole in the RAM object (it costs no memory and reads as zero),
// so a newly populated page is zero-filled without writing it.

import { HEADER, HypervisorError, type DomainMemory } from '@ferry/hypervisor';
import type { HostMemory } from './host-memory';

const LOG_DIRTY = 0; // CONTROL.LOG_DIRTY of the guest platform contract

function checkRange(memory: DomainMemory, pfns: ArrayLike<number>, call: string): void {
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= memory.maxPages) {
      throw new HypervisorError('EINVAL', `${call}: pfn ${pfn} is outside the p2m [0, ${memory.maxPages})`);
    }
  }
}

export interface PopulateOptions {
  /**
   * Zero pages that are already populated (the guest's populate_physmap replaces them with fresh
   * zeroed frames). A restore writing pages leaves them alone: it overwrites them anyway.
   */
  zeroExisting: boolean;
  /**
   * Back newly populated pages with memory at once (one fallocate per run of pfns) instead of one
   * page fault each at first write: a restore writes every page it populates.
   */
  allocate?: boolean;
}

/** Populates the pfns; returns how many were newly populated. ENOMEM (nothing changed) if the host lacks pages. */
export function populatePhysmap(
  memory: DomainMemory,
  host: HostMemory,
  pfns: ArrayLike<number>,
  opts: PopulateOptions,
): number {
  checkRange(memory, pfns, 'populate_physmap');
  let missing = 0;
  for (let i = 0; i < pfns.length; i++) if (!memory.isPopulated(pfns[i])) missing++;
  host.reserve(missing, `populating ${missing} pages of domain ${memory.header[HEADER.DOMID]}`);
  const logDirty = Atomics.load(memory.control, LOG_DIRTY) === 1;
  let added = 0;
  let runStart = -1;
  let runLength = 0;
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (memory.setPopulated(pfn)) {
      added++;
      if (opts.allocate) {
        if (runLength > 0 && pfn === runStart + runLength) {
          runLength++;
        } else {
          if (runLength > 0) memory.allocatePages(runStart, runLength);
          runStart = pfn;
          runLength = 1;
        }
      }
    } else if (opts.zeroExisting) {
      memory.punchPages(pfn, 1);
    } else {
      continue;
    }
    // A page that appears during pre-copy must reach the destination, or it would be missing there.
    if (logDirty) memory.markDirty(pfn);
  }
  if (runLength > 0) memory.allocatePages(runStart, runLength);
  // Duplicates in the list were counted more than once above.
  host.release(missing - added);
  memory.addNrPages(added);
  return added;
}

/**
 * Unpopulates the pfns: their memory goes back to the host and their contents are gone. Every pfn
 * must be populated (EINVAL otherwise, with nothing changed). Not marked dirty, as in Xen: a page
 * the guest gave up does not need to be sent.
 */
export function decreaseReservation(memory: DomainMemory, host: HostMemory, pfns: ArrayLike<number>): number {
  checkRange(memory, pfns, 'decrease_reservation');
  for (let i = 0; i < pfns.length; i++) {
    if (!memory.isPopulated(pfns[i])) {
      throw new HypervisorError('EINVAL', `decrease_reservation: pfn ${pfns[i]} is not populated`);
    }
  }
  let removed = 0;
  // Punch runs of consecutive pfns with one fallocate each.
  let runStart = -1;
  let runLength = 0;
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (!memory.clearPopulated(pfn)) continue; // a duplicate in the list
    removed++;
    if (runLength > 0 && pfn === runStart + runLength) {
      runLength++;
    } else {
      if (runLength > 0) memory.punchPages(runStart, runLength);
      runStart = pfn;
      runLength = 1;
    }
  }
  if (runLength > 0) memory.punchPages(runStart, runLength);
  memory.addNrPages(-removed);
  host.release(removed);
  return removed;
}
