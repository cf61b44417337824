// What the balloon manager tells about a migration's work: a span for the compaction ("compact
// (inflate balloon)": freeze, target, inflate, settle) and one for the restore after resume
// ("restore balloon (deflate)"), with the pages involved as attributes, and Prometheus metrics.

import { trace } from '@opentelemetry/api';
import type { BalloonManagerServer } from '@ferry/proto';
import { MIGRATION_ID_ATTRIBUTE, MetricsRegistry, countAttributes, tracedUnary } from '@ferry/telemetry';

const tracer = trace.getTracer('ferry.balloon-manager');

export class BalloonManagerMetrics {
  readonly registry = new MetricsRegistry();
  readonly compactions = this.registry.counter({
    name: 'ferry_balloon_manager_compactions_total',
    help: 'Compactions answered, by result: reached (the target), short (settled or timed out above it), error.',
    labelNames: ['result'],
  });
  readonly pagesReleased = this.registry.counter({
    name: 'ferry_balloon_manager_pages_released_total',
    help: 'Guest pages the balloon handed back to the hypervisor in compactions (never sent by a migration).',
  });
  readonly compactionSeconds = this.registry.histogram({
    name: 'ferry_balloon_manager_compaction_seconds',
    help: 'Time a compaction took (inflating and settling).',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  });
  readonly restores = this.registry.counter({
    name: 'ferry_balloon_manager_restores_total',
    help: 'Balloon restores (deflations back to the pre-migration target) answered, by result (ok or error).',
    labelNames: ['result'],
  });

  constructor() {
    for (const result of ['reached', 'short', 'error']) this.compactions.touch({ result });
    for (const result of ['ok', 'error']) this.restores.touch({ result });
  }
}

/** `handlers` with Compact and Restore traced and counted. */
export function observedBalloonManager(handlers: BalloonManagerServer, metrics: BalloonManagerMetrics): BalloonManagerServer {
  return {
    ...handlers,
    compact: tracedUnary(tracer, handlers.compact, {
      name: () => 'compact (inflate balloon)',
      attributes: (req) => ({ [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '', 'ferry.domid': req.domid }),
      onAnswer: (_req, res, span, seconds) => {
        const r = res.result;
        span.setAttributes(
          countAttributes({
            'ferry.balloon.reached': r?.reached,
            'ferry.balloon.released_pages': r?.releasedPages,
            'ferry.balloon.target_pages': r?.targetPages,
            'ferry.balloon.populated_pages_before': r?.populatedPagesBefore,
            'ferry.balloon.populated_pages_after': r?.populatedPagesAfter,
            'ferry.balloon.shortfall': r?.reason || undefined,
          }),
        );
        metrics.compactions.inc(1, { result: r?.reached ? 'reached' : 'short' });
        metrics.pagesReleased.inc(Number(r?.releasedPages ?? 0n));
        metrics.compactionSeconds.observe(seconds);
      },
      onError: () => metrics.compactions.inc(1, { result: 'error' }),
    }),
    restore: tracedUnary(tracer, handlers.restore, {
      name: () => 'restore balloon (deflate)',
      attributes: (req) => ({ [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '', 'ferry.domid': req.domid, 'ferry.balloon.target_pages': Number(req.targetPages) }),
      onAnswer: () => metrics.restores.inc(1, { result: 'ok' }),
      onError: () => metrics.restores.inc(1, { result: 'error' }),
    }),
  };
}
