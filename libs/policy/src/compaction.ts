// Balloon compaction target (the thesis' "memory tight compression"): before round 0, shrink the
// guest to what it uses plus headroom, so free guest memory is handed back to the hypervisor and
// never sent. Pure: a function of the guest's memory figures.

export interface GuestMemoryFigures {
  /** Pages currently populated. */
  populatedPages: number;
  /** Free pages as the guest reports them. */
  freePages: number;
  /** The current balloon target, in pages. */
  targetPages: number;
}

export interface CompactionParams {
  /** Headroom over used memory, as a fraction of used memory (0.1 = 10%). */
  headroom: number;
  /** Never shrink below this many pages (the guest needs room to keep running). */
  floorPages: number;
}

export const DEFAULT_COMPACTION: CompactionParams = { headroom: 0.1, floorPages: 4096 /* 16 MiB */ };

export interface CompactionPlan {
  targetPages: number;
  /** Pages the balloon is expected to release. */
  expectedReleasePages: number;
  /** Why nothing will be done, when that is the case. */
  skipReason?: 'already-compact' | 'no-free-memory';
}

export function compactionTarget(m: GuestMemoryFigures, params: CompactionParams = DEFAULT_COMPACTION): CompactionPlan {
  const used = Math.max(0, m.populatedPages - m.freePages);
  const wanted = Math.max(params.floorPages, Math.ceil(used * (1 + params.headroom)));
  const targetPages = Math.min(wanted, m.targetPages, m.populatedPages);
  const expectedReleasePages = Math.max(0, m.populatedPages - targetPages);
  if (m.freePages <= 0) return { targetPages: m.populatedPages, expectedReleasePages: 0, skipReason: 'no-free-memory' };
  if (expectedReleasePages === 0) return { targetPages, expectedReleasePages, skipReason: 'already-compact' };
  return { targetPages, expectedReleasePages };
}
