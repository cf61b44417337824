// The trace context across the data connection: the sender puts the W3C traceparent of its
// active span into the hello and, since one connection carries many rounds, into the first batch
// of each round ("send round N") and the state batch ("send vCPU state"); the receiver makes its
// spans ("write round N", "load vCPU state") children of it, so they join the migration's trace
// although no gRPC call carries them. Only @opentelemetry/api: without an SDK registered
// (tests, tools) this is all no-ops.

import { ROOT_CONTEXT, context, propagation, trace, type Context } from '@opentelemetry/api';

export const tracer = trace.getTracer('ferry.page-streamer.data-plane');

/** The active context as a traceparent ('' when there is none). */
export function activeTraceparent(): string {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? '';
}

/** The context a hello's traceparent stands for (the root context when it is empty). */
export function contextOfTraceparent(traceparent: string): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}
