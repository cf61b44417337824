// How much memory a migrating domain stands for, as the coordinator counts it (pre-flight's
// capacity check on the target, the record's memory_bytes): the memory it may use (Xen's maxmem,
// Domain.memory_pages) where the host reports it, else its p2m size (max_pages). On Xen the p2m of
// an HVM/PVH guest reaches the special pages near 4 GiB: a 128 MiB guest has a p2m of ~4 GiB.

import type { Domain } from '@ferry/proto';

export function memoryPagesOf(domain: Pick<Domain, 'maxPages' | 'memoryPages'>): bigint {
  return domain.memoryPages > 0n && domain.memoryPages < domain.maxPages ? domain.memoryPages : domain.maxPages;
}
