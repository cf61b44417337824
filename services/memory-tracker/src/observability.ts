// What the memory tracker tells about a migration's work: a span per PrepareRound ("prepare
// round N (CLEAN)": the log-dirty CLEAN, the layer classification and the send set; round 0
// takes the populated pages instead of a CLEAN), with the round's counts as attributes, and
// Prometheus metrics.

import { trace } from '@opentelemetry/api';
import type { MemoryTrackerServer, PrepareRoundRequest, PrepareRoundResponse } from '@ferry/proto';
import { MIGRATION_ID_ATTRIBUTE, MetricsRegistry, countAttributes, tracedUnary } from '@ferry/telemetry';

const tracer = trace.getTracer('ferry.memory-tracker');

export class MemoryTrackerMetrics {
  readonly registry = new MetricsRegistry();
  readonly roundsPrepared = this.registry.counter({
    name: 'ferry_memory_tracker_rounds_prepared_total',
    help: 'Rounds prepared (send sets fixed), round 0 and final rounds included; a retried PrepareRound counts once.',
  });
  readonly cleans = this.registry.counter({
    name: 'ferry_memory_tracker_cleans_total',
    help: 'Rounds that read and cleared the dirty bitmap (log-dirty CLEAN), final rounds included.',
  });
  readonly dirtyPages = this.registry.counter({
    name: 'ferry_memory_tracker_dirty_pages_total',
    help: 'Dirty pages the CLEANs reported.',
  });
  readonly prepareSeconds = this.registry.histogram({
    name: 'ferry_memory_tracker_prepare_round_seconds',
    help: 'Time PrepareRound took on this host (CLEAN, classification, send set).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  /** Per migration, the last round prepared: a retry of it is not counted again. */
  private readonly lastPrepared = new Map<string, { round: number; final: boolean; dirty: number }>();

  /**
   * Counts one PrepareRound answer. A retry (same round, same `final`) returns the stored counts
   * and did no CLEAN: not counted. A round prepared again as the final one (pre-copy stopped
   * after its CLEAN) did a second CLEAN, and its dirty count is the sum of both.
   */
  prepared(req: PrepareRoundRequest, res: PrepareRoundResponse, seconds: number): void {
    const id = req.fence?.migrationId ?? '';
    const last = this.lastPrepared.get(id);
    const dirty = Number(res.dirtyCount);
    if (last && last.round === req.round && last.final === req.final) return;
    const upgraded = last !== undefined && last.round === req.round && req.final && !last.final;
    this.lastPrepared.set(id, { round: req.round, final: req.final, dirty });
    this.prepareSeconds.observe(seconds);
    if (!upgraded) this.roundsPrepared.inc();
    if (req.round === 0 && !req.final) return; // round 0 reads the populated pages, no CLEAN
    this.cleans.inc();
    this.dirtyPages.inc(upgraded ? Math.max(0, dirty - last.dirty) : dirty);
  }

  forget(migrationId: string): void {
    this.lastPrepared.delete(migrationId);
  }
}

function roundSpanName(req: PrepareRoundRequest): string {
  if (req.round === 0 && !req.final) return 'prepare round 0';
  return `prepare round ${req.round} (CLEAN${req.final ? ', final' : ''})`;
}

/** `handlers` with PrepareRound traced and counted. */
export function observedMemoryTracker(handlers: MemoryTrackerServer, metrics: MemoryTrackerMetrics): MemoryTrackerServer {
  return {
    ...handlers,
    prepareRound: tracedUnary(tracer, handlers.prepareRound, {
      name: roundSpanName,
      attributes: (req) => ({
        [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '',
        'ferry.round': req.round,
        'ferry.final': req.final,
        'ferry.log_dirty.clean': req.round > 0 || req.final,
      }),
      onAnswer: (req, res, span, seconds) => {
        span.setAttributes(
          countAttributes({
            'ferry.dirty_count': res.dirtyCount,
            'ferry.pages_to_send': res.pagesToSend,
            'ferry.pages_deferred': res.pagesDeferred,
            'ferry.pages_released': res.pagesReleased,
            'ferry.layers.cold': res.layers?.cold,
            'ferry.layers.warm': res.layers?.warm,
            'ferry.layers.hot': res.layers?.hot,
          }),
        );
        metrics.prepared(req, res, seconds);
      },
    }),
    stopTracking: tracedUnary(tracer, handlers.stopTracking, {
      name: () => 'stop tracking (log-dirty off)',
      attributes: (req) => ({ [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '' }),
      onAnswer: (req) => metrics.forget(req.fence?.migrationId ?? ''),
    }),
  };
}
