// What the page streamer tells about a migration's work. Source side: a "send round N" span per
// SendRound (the final round's holds @ferry/streaming's "send vCPU state") and a "send vCPU state"
// span per SendState; their context travels in the data stream (trace-context.ts), so the target's
// "write round N" / "load vCPU state" spans (made by @ferry/streaming's receiver, which has no
// gRPC call per round) are their children. Prometheus
// metrics count both directions; the received side is read from the streamer's totals.

import { SpanKind, trace } from '@opentelemetry/api';
import type { PageStreamerServer } from '@ferry/proto';
import type { ReceivedTotals } from '@ferry/streaming';
import { MIGRATION_ID_ATTRIBUTE, MetricsRegistry, countAttributes, tracedUnary } from '@ferry/telemetry';

const tracer = trace.getTracer('ferry.page-streamer');

export class PageStreamerMetrics {
  readonly registry = new MetricsRegistry();
  readonly roundsSent = this.registry.counter({
    name: 'ferry_page_streamer_rounds_sent_total',
    help: 'Rounds streamed to a peer and acknowledged by it.',
  });
  readonly pagesSent = this.registry.counter({
    name: 'ferry_page_streamer_pages_sent_total',
    help: 'Pages sent to peers (raw and zero pages).',
  });
  readonly zeroPagesSent = this.registry.counter({
    name: 'ferry_page_streamer_zero_pages_sent_total',
    help: 'Of the pages sent, all-zero pages sent without payload.',
  });
  readonly bytesSent = this.registry.counter({
    name: 'ferry_page_streamer_bytes_sent_total',
    help: 'Bytes written to data connections by SendRound and SendState.',
  });

  /** The received side, read from the streamer when scraped. */
  observeReceiver(received: ReceivedTotals): void {
    this.registry.observed({
      name: 'ferry_page_streamer_rounds_received_total',
      help: 'Rounds received completely (every page written into the receiving domain).',
      type: 'counter',
      collect: () => received.rounds,
    });
    this.registry.observed({
      name: 'ferry_page_streamer_pages_received_total',
      help: 'Pages received from peers.',
      type: 'counter',
      collect: () => received.pages,
    });
    this.registry.observed({
      name: 'ferry_page_streamer_bytes_received_total',
      help: 'Bytes read from data connections.',
      type: 'counter',
      collect: () => received.wireBytes,
    });
  }
}

/** `handlers` with SendRound and SendState traced and counted. */
export function observedPageStreamer(handlers: PageStreamerServer, metrics: PageStreamerMetrics): PageStreamerServer {
  return {
    ...handlers,
    sendRound: tracedUnary(tracer, handlers.sendRound, {
      name: (req) => `send round ${req.round}`,
      kind: SpanKind.CLIENT,
      attributes: (req) => ({
        [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '',
        'ferry.round': req.round,
        'ferry.domid': req.domid,
        'ferry.peer_endpoint': req.peerEndpoint,
        'ferry.bandwidth_bps': Number(req.bandwidthBps),
      }),
      onAnswer: (_req, res, span) => {
        span.setAttributes(
          countAttributes({
            'ferry.pages_sent': res.pagesSent,
            'ferry.zero_pages': res.zeroPages,
            'ferry.absent_pages': res.absentPages,
            'ferry.skipped_pages': res.skippedPages,
            'ferry.wire_bytes': res.wireBytes,
            'ferry.batches': res.batches,
            'ferry.throughput_bps': res.throughputBps,
          }),
        );
        metrics.roundsSent.inc();
        metrics.pagesSent.inc(Number(res.pagesSent));
        metrics.zeroPagesSent.inc(Number(res.zeroPages));
        metrics.bytesSent.inc(Number(res.wireBytes));
      },
    }),
    sendState: tracedUnary(tracer, handlers.sendState, {
      name: () => 'send vCPU state',
      kind: SpanKind.CLIENT,
      attributes: (req) => ({ [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '', 'ferry.domid': req.domid, 'ferry.peer_endpoint': req.peerEndpoint }),
      onAnswer: (_req, res, span) => {
        span.setAttribute('ferry.state_bytes', Number(res.stateBytes));
        metrics.bytesSent.inc(Number(res.stateBytes));
      },
    }),
  };
}
