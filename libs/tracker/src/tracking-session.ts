// One migration's tracking on the source host: the domain, its dirty-page classifier, and the
// latest prepared round with its send set. Calls on a session are serialised by MemoryTracker, so
// nothing here needs to guard against interleaving.
//
// Round rules (memory_tracker.proto, PrepareRound):
// - round 0 takes every populated page (the p2m); later rounds CLEAN and classify;
// - preparing the latest round again with the same `final` is a retry: the stored counts, no CLEAN;
// - preparing the latest round again with `final` set upgrades it: runPrecopy stopped after the
//   round's counts without sending it, so the round's unsent pages, the final CLEAN's dirty pages
//   and every held page form the final send set;
// - nothing follows a final round.

import { bitmapCount, type HypervisorDriver } from '@ferry/hypervisor';
import { DirtyPageClassifier, type LayerCounts, type RoundClassification } from '@ferry/policy';
import { failedPrecondition, notFound } from '@ferry/runtime';
import type { TrackingConfig } from './tracking-config';

export interface RoundCounts {
  round: number;
  final: boolean;
  /** CLEAN's dirty_count (summed over both CLEANs of an upgraded round); populated pages in round 0. */
  dirtyCount: number;
  faultCount: number;
  pagesToSend: number;
  pagesDeferred: number;
  pagesReleased: number;
  layers: LayerCounts;
  populatedPages: number;
  elapsedMs: number;
}

export interface SendSet {
  /** One bit per pfn, DirtyBitmap order; ceil(maxPages / 8) bytes. */
  bitmap: Uint8Array;
  pageCount: number;
  maxPages: number;
  domid: number;
  final: boolean;
  /** xen-legacy's to_skip applies to this round (never to a final one). */
  skipRedirtiedPages: boolean;
}

interface PreparedRound {
  counts: RoundCounts;
  sendSet: Uint8Array;
  /** The streamer took the set: the classifier counts its pages as sent. */
  taken: boolean;
}

export class TrackingSession {
  /** The highest coordinator term accepted for this migration. */
  epoch: bigint;
  private readonly classifier: DirtyPageClassifier;
  private prepared: PreparedRound | null = null;
  private lastPopulated: number;

  constructor(
    private readonly driver: HypervisorDriver,
    readonly migrationId: string,
    readonly domid: number,
    readonly maxPages: number,
    /** Populated pages when tracking started (StartTracking's answer, also on retries). */
    readonly populatedAtStart: number,
    readonly config: TrackingConfig,
    epoch: bigint,
  ) {
    this.epoch = epoch;
    this.lastPopulated = populatedAtStart;
    this.classifier = new DirtyPageClassifier(maxPages, config.holdJitteryPages, config.layered);
  }

  get lastPreparedRound(): number | null {
    return this.prepared?.counts.round ?? null;
  }

  async prepareRound(round: number, final: boolean): Promise<RoundCounts> {
    const last = this.prepared;
    if (last === null) {
      if (round !== 0) throw outOfOrder(this.migrationId, round, 'no round is prepared yet; the first is round 0');
      return this.store(await this.firstRound(final));
    }
    const lastRound = last.counts.round;
    if (round === lastRound) {
      if (final === last.counts.final) return last.counts;
      if (last.counts.final) {
        throw failedPrecondition('ROUND_ALREADY_FINAL', `round ${round} of migration ${this.migrationId} was prepared as the final round`);
      }
      return this.store(await this.upgradeToFinal(last));
    }
    if (last.counts.final) {
      throw failedPrecondition('TRACKING_FINISHED', `migration ${this.migrationId}: no round follows the final round ${lastRound}`);
    }
    if (round !== lastRound + 1) {
      throw outOfOrder(this.migrationId, round, `the last prepared round is ${lastRound}; prepare ${lastRound + 1} next (or ${lastRound} again)`);
    }
    return this.store(await this.laterRound(round, final));
  }

  /** The latest prepared round's send set; its pages count as sent from now on (once per round). */
  takeSendSet(round: number): SendSet {
    const p = this.prepared;
    if (!p || p.counts.round !== round) {
      const latest = p ? `the latest prepared round is ${p.counts.round}` : 'no round is prepared';
      throw notFound('ROUND_NOT_PREPARED', `migration ${this.migrationId} has no send set for round ${round} (${latest})`);
    }
    if (!p.taken) {
      this.classifier.markSent(p.sendSet);
      p.taken = true;
    }
    return {
      bitmap: p.sendSet,
      pageCount: p.counts.pagesToSend,
      maxPages: this.maxPages,
      domid: this.domid,
      final: p.counts.final,
      skipRedirtiedPages: this.config.skipRedirtiedPages && !p.counts.final,
    };
  }

  private async firstRound(final: boolean): Promise<{ counts: RoundCounts; sendSet: Uint8Array }> {
    const started = performance.now();
    const p2m = await this.driver.p2m(this.domid);
    const c = this.classifier.firstRound(p2m);
    return {
      sendSet: c.sendSet,
      counts: this.countsOf(0, final, c, { dirtyCount: c.pagesToSend, faultCount: 0 }, c.pagesToSend, started),
    };
  }

  private async laterRound(round: number, final: boolean): Promise<{ counts: RoundCounts; sendSet: Uint8Array }> {
    const started = performance.now();
    const populating = this.populatedPages();
    const dirty = await this.driver.logDirtyClean(this.domid, { final });
    const c = this.classifier.classify(dirty.bitmap, final);
    return { sendSet: c.sendSet, counts: this.countsOf(round, final, c, dirty.stats, await populating, started) };
  }

  private async upgradeToFinal(last: PreparedRound): Promise<{ counts: RoundCounts; sendSet: Uint8Array }> {
    const started = performance.now();
    const round = last.counts.round;
    const populating = this.populatedPages();
    const dirty = await this.driver.logDirtyClean(this.domid, { final: true });
    const c = this.classifier.classify(dirty.bitmap, true);
    // Pages the streamer took but the coordinator never saw delivered (it stopped after the
    // round's counts): send them again, page writes are idempotent.
    if (last.taken) {
      const set = c.sendSet;
      for (let i = 0; i < set.length; i++) set[i] |= last.sendSet[i];
      c.pagesToSend = bitmapCount(set);
    }
    const stats = {
      dirtyCount: last.counts.dirtyCount + dirty.stats.dirtyCount,
      faultCount: last.counts.faultCount + dirty.stats.faultCount,
    };
    return { sendSet: c.sendSet, counts: this.countsOf(round, true, c, stats, await populating, started) };
  }

  /**
   * The domain's populated pages, asked for together with a CLEAN (sent just before it, not awaited
   * first: a final round's preparation is downtime). Nothing may fail after the CLEAN, whose bits
   * exist nowhere else once it has returned; the figure is only reported, so if it cannot be read
   * the last one known stands in.
   */
  private populatedPages(): Promise<number> {
    return this.driver.domainInfo(this.domid).then(
      (info) => (this.lastPopulated = info.nrPages),
      () => this.lastPopulated,
    );
  }

  private countsOf(
    round: number,
    final: boolean,
    c: RoundClassification,
    stats: { dirtyCount: number; faultCount: number },
    populatedPages: number,
    started: number,
  ): RoundCounts {
    return {
      round,
      final,
      dirtyCount: stats.dirtyCount,
      faultCount: stats.faultCount,
      pagesToSend: c.pagesToSend,
      pagesDeferred: final ? 0 : c.held,
      pagesReleased: c.released,
      layers: c.layers,
      populatedPages,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  private store(result: { counts: RoundCounts; sendSet: Uint8Array }): RoundCounts {
    this.prepared = { counts: result.counts, sendSet: result.sendSet, taken: false };
    return result.counts;
  }
}

function outOfOrder(migrationId: string, round: number, why: string) {
  return failedPrecondition('ROUND_OUT_OF_ORDER', `migration ${migrationId}: cannot prepare round ${round}: ${why}`);
}
