// What the host agent tells about a migration's work: a "suspend domain" span (the start of the
// downtime: the guest's suspend handshake) inside the SuspendDomain call, and Prometheus metrics.
// The other methods are covered by the gRPC server spans alone.

import { trace } from '@opentelemetry/api';
import type { HostAgentServer } from '@ferry/proto';
import { MIGRATION_ID_ATTRIBUTE, MetricsRegistry, tracedUnary } from '@ferry/telemetry';

const tracer = trace.getTracer('ferry.host-agent');

export class HostAgentMetrics {
  readonly registry = new MetricsRegistry();
  readonly suspends = this.registry.counter({
    name: 'ferry_host_agent_suspends_total',
    help: 'SuspendDomain calls answered, by result (ok or error).',
    labelNames: ['result'],
  });
  readonly suspendSeconds = this.registry.histogram({
    name: 'ferry_host_agent_suspend_seconds',
    help: "Time the guest's suspend handshake took (the first part of a migration's downtime).",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  constructor() {
    for (const result of ['ok', 'error']) this.suspends.touch({ result });
  }
}

/** `handlers` with the suspend traced and counted. */
export function observedHostAgent(handlers: HostAgentServer, metrics: HostAgentMetrics): HostAgentServer {
  return {
    ...handlers,
    suspendDomain: tracedUnary(tracer, handlers.suspendDomain, {
      name: () => 'suspend domain',
      attributes: (req) => ({ [MIGRATION_ID_ATTRIBUTE]: req.fence?.migrationId ?? '', 'ferry.domid': req.domid }),
      onAnswer: (_req, res, span) => {
        span.setAttribute('ferry.suspend_ms', Number(res.elapsedMs));
        metrics.suspends.inc(1, { result: 'ok' });
        metrics.suspendSeconds.observe(Number(res.elapsedMs) / 1000);
      },
      onError: () => metrics.suspends.inc(1, { result: 'error' }),
    }),
  };
}
