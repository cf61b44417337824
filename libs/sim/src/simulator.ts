// The simulator: runs the very policy code of a live migration (runPrecopy, the policies and the
// DirtyPageClassifier from @ferry/policy) against a dirty trace and a link model, on a virtual
// clock. Same inputs, same output.

import {
  DirtyPageClassifier,
  compactionTarget,
  policyByName,
  runPrecopy,
  type LayeredParams,
  type LayeredStopParams,
  type PolicyName,
  type PrecopyExecutor,
  type RoundRecord,
  type StopReason,
} from '@ferry/policy';
import type { DirtyTrace } from './trace';

export const PAGE_BYTES = 4096;
/** A page on the wire: its data plus its 8-byte pfn entry (Xen's PAGE_DATA layout). */
export const PAGE_WIRE_BYTES = PAGE_BYTES + 8;

export interface LinkModel {
  /** Link bandwidth, bits per second. */
  bandwidthBits: number;
  /** Fixed cost of each round (CLEAN hypercall, round set-up), ms. */
  roundOverheadMs: number;
  /** Cost of moving the vCPU state and resuming the target, ms (part of downtime). */
  switchoverMs: number;
}

export const DEFAULT_LINK: LinkModel = { bandwidthBits: 1e9, roundOverheadMs: 1, switchoverMs: 2 };

export interface SimOptions {
  trace: DirtyTrace;
  policy: PolicyName;
  compaction: boolean;
  link?: Partial<LinkModel>;
  layered?: LayeredParams;
  layeredStop?: Partial<LayeredStopParams>;
  /** Compaction headroom over used memory. */
  headroom?: number;
  /** Pages per second the guest's balloon driver gives back (compaction time). */
  balloonPagesPerS?: number;
}

export interface SimResult {
  policy: PolicyName;
  compaction: boolean;
  rounds: RoundRecord[];
  stopReason: StopReason;
  liveRounds: number;
  pagesSent: number;
  bytesSent: number;
  totalMs: number;
  downtimeMs: number;
  compactionMs: number;
  balloonReleasedPages: number;
  deferredPages: number;
}

function count(b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    let x = b[i];
    while (x) {
      x &= x - 1;
      n++;
    }
  }
  return n;
}

/** Takes `release` pages the guest never writes out of the p2m, highest pfns first (the balloon's pick). */
function compactP2m(trace: DirtyTrace, release: number): Uint8Array {
  const p2m = new Uint8Array(trace.p2m);
  const hot = trace.everDirtied();
  for (let pfn = trace.pages - 1; pfn >= 0 && release > 0; pfn--) {
    const byte = pfn >> 3;
    const bit = 1 << (pfn & 7);
    if (p2m[byte] & bit && !(hot[byte] & bit)) {
      p2m[byte] &= ~bit;
      release--;
    }
  }
  return p2m;
}

export async function simulate(opts: SimOptions): Promise<SimResult> {
  const link = { ...DEFAULT_LINK, ...opts.link };
  const trace = opts.trace;
  const policy = policyByName(opts.policy, opts.layeredStop);
  const msPerPage = (PAGE_WIRE_BYTES * 8 * 1000) / link.bandwidthBits;

  let now = 0;
  let p2m: Uint8Array = trace.p2m;
  let released = 0;
  if (opts.compaction) {
    const populated = count(p2m);
    const plan = compactionTarget(
      { populatedPages: populated, freePages: trace.freePages, targetPages: populated },
      { headroom: opts.headroom ?? 0.1, floorPages: 4096 },
    );
    p2m = compactP2m(trace, plan.expectedReleasePages);
    released = populated - count(p2m);
    now += (released / (opts.balloonPagesPerS ?? 500_000)) * 1000;
  }
  const compactionMs = now;
  const populated = count(p2m);

  const classifier = new DirtyPageClassifier(trace.pages, policy.holdsJitteryPages, opts.layered);
  let lastClean = now;
  let suspendedAt: number | undefined;
  let sendSet: Uint8Array = new Uint8Array(0);
  let lastHeld = 0;

  const dirtySinceClean = (): Uint8Array => {
    const until = suspendedAt ?? now;
    const dirty = trace.dirtiedBetween(lastClean, until);
    for (let i = 0; i < dirty.length; i++) dirty[i] &= p2m[i];
    lastClean = until;
    return dirty;
  };

  // Xen legacy's to_skip: before each batch of 1024, PEEK and drop pages already re-dirtied in
  // this round (they will be in the next CLEAN anyway). Removes them from `set`; returns how many.
  const skipRedirtied = (set: Uint8Array): number => {
    const peek = new Uint8Array(set.length);
    let peekUntil = lastClean;
    let t = now;
    let inBatch = 0;
    let skipped = 0;
    for (let byte = 0; byte < set.length; byte++) {
      if (set[byte] === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if (!(set[byte] & (1 << bit))) continue;
        if (inBatch === 0) {
          const fresh = trace.dirtiedBetween(peekUntil, t);
          for (let i = 0; i < peek.length; i++) peek[i] |= fresh[i];
          peekUntil = t;
        }
        if (peek[byte] & (1 << bit)) {
          set[byte] &= ~(1 << bit);
          skipped++;
        } else {
          t += msPerPage;
          inBatch = (inBatch + 1) % 1024;
        }
      }
    }
    return skipped;
  };

  const executor: PrecopyExecutor = {
    async prepareRound(round, final) {
      now += link.roundOverheadMs;
      if (round === 0) {
        const c = classifier.firstRound(p2m);
        sendSet = c.sendSet;
        return { dirtyCount: c.pagesToSend, faultCount: 0, pagesToSend: c.pagesToSend, held: 0, released: 0 };
      }
      const dirty = dirtySinceClean();
      const c = classifier.classify(dirty, final);
      sendSet = c.sendSet;
      if (!final) lastHeld = c.held;
      return { dirtyCount: count(dirty), faultCount: 0, pagesToSend: c.pagesToSend, held: c.held, released: c.released };
    },
    async sendRound(_round, final) {
      const skipped = policy.skipsRedirtiedPages && !final ? skipRedirtied(sendSet) : 0;
      classifier.markSent(sendSet);
      const pages = count(sendSet);
      const elapsedMs = pages * msPerPage;
      now += elapsedMs;
      return { pagesSent: pages, pagesSkipped: skipped, zeroPages: 0, bytes: pages * PAGE_WIRE_BYTES, elapsedMs };
    },
    async suspend() {
      suspendedAt = now;
    },
  };

  const out = await runPrecopy(executor, policy, { domainPages: populated, p2mSize: trace.pages, pageWireBytes: PAGE_WIRE_BYTES });
  now += link.switchoverMs;
  const pagesSent = out.rounds.reduce((s, r) => s + r.pagesSent, 0);
  return {
    policy: opts.policy,
    compaction: opts.compaction,
    rounds: out.rounds,
    stopReason: out.stopReason,
    liveRounds: out.liveRounds,
    pagesSent,
    bytesSent: pagesSent * PAGE_WIRE_BYTES,
    totalMs: now,
    downtimeMs: now - (suspendedAt ?? now),
    compactionMs,
    balloonReleasedPages: released,
    deferredPages: lastHeld,
  };
}
