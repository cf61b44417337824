// A decorator for grpc-js unary handlers: the handler runs inside a span of its own (a child of
// the call's server span, which the gRPC instrumentation makes a child of the caller's span), and
// when it answers, `onAnswer` may add the outcome to the span and to metrics. Services keep their
// adapters plain ("proto in, library call, proto out") and decorate the methods that do a
// migration's work in one place (services/<name>/src/observability.ts).

import { SpanKind, context, diag, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { handleUnaryCall, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { markFailed } from './spans';

export interface UnaryObservation<Req, Res> {
  /** The span's name for this request, e.g. `send round 3`. */
  name: (request: Req) => string;
  attributes?: (request: Req) => Attributes;
  /** INTERNAL by default; CLIENT for work that talks to another process (the peer streamer). */
  kind?: SpanKind;
  /** The handler answered with a response. */
  onAnswer?: (request: Req, response: Res, span: Span, elapsedSeconds: number) => void;
  /** The handler answered with an error. */
  onError?: (request: Req, error: unknown, span: Span, elapsedSeconds: number) => void;
}

export function tracedUnary<Req, Res>(tracer: Tracer, handler: handleUnaryCall<Req, Res>, o: UnaryObservation<Req, Res>): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = performance.now();
    const span = tracer.startSpan(o.name(call.request), { kind: o.kind ?? SpanKind.INTERNAL, attributes: o.attributes?.(call.request) });
    const answer: sendUnaryData<Res> = (err, value, ...rest) => {
      const elapsed = (performance.now() - started) / 1000;
      try {
        if (err) {
          markFailed(span, err instanceof Error ? err : err.details || `gRPC status ${err.code}`);
          o.onError?.(call.request, err, span, elapsed);
        } else if (value) {
          o.onAnswer?.(call.request, value, span, elapsed);
        }
      } catch (observerError) {
        // Observing must never cost the caller its answer.
        diag.error(`observing ${o.name(call.request)} failed`, observerError);
      } finally {
        span.end();
      }
      callback(err, value, ...rest);
    };
    context.with(trace.setSpan(context.active(), span), () => handler(call, answer));
  };
}
