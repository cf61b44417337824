// OpenTelemetry context in NATS message headers (there is no NATS instrumentation for Node):
// the propagators write `traceparent` (and `baggage`) into a message's headers on publish and
// read them back on consume, so a consumer's span joins the publisher's trace.

import { ROOT_CONTEXT, propagation, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { headers, type MsgHdrs } from '@nats-io/transport-node';

const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<MsgHdrs | undefined> = {
  get: (carrier, key) => (carrier?.has(key) ? carrier.get(key) : undefined),
  keys: (carrier) => carrier?.keys() ?? [],
};

/** Headers carrying `ctx` (empty when no propagator is registered or `ctx` holds no trace). */
export function headersWithContext(ctx: Context): MsgHdrs {
  const h = headers();
  propagation.inject(ctx, h, setter);
  return h;
}

/** The context a message's headers carry (the root context when they carry none). */
export function contextFromHeaders(h: MsgHdrs | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, h, getter);
}
