// pino JSON logs, correlated with traces (no extra dependency, just @opentelemetry/api):
// - every line logged inside an active span carries its trace_id and span_id;
// - every line logged while working for a migration carries migration_id. The coordinator puts
//   the id into the migration's context as W3C baggage (withMigrationId); the baggage propagator
//   carries it with the trace context through gRPC metadata and NATS headers, so the per-host
//   services' lines get it too, without each call site passing it. A child logger that binds
//   migration_id itself is not given a second one.

import pino, { type Logger } from 'pino';
import { context, propagation, trace, type Context } from '@opentelemetry/api';

export type { Logger };

/** The baggage entry (and log key) naming the migration a piece of work belongs to. */
export const MIGRATION_ID_BAGGAGE_KEY = 'ferry.migration_id';

/** `ctx` with the migration id in its baggage. */
export function withMigrationId(ctx: Context, migrationId: string): Context {
  const baggage = propagation.getBaggage(ctx) ?? propagation.createBaggage();
  return propagation.setBaggage(ctx, baggage.setEntry(MIGRATION_ID_BAGGAGE_KEY, { value: migrationId }));
}

/** The migration id in `ctx`'s baggage (the active context by default), if any. */
export function migrationIdOf(ctx: Context = context.active()): string | undefined {
  return propagation.getBaggage(ctx)?.getEntry(MIGRATION_ID_BAGGAGE_KEY)?.value || undefined;
}

const chindings = pino.symbols.chindingsSym;

export function createLogger(service: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    name: service,
    level: process.env.FERRY_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
    base: { service, pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin(mergeObject, _level, logger) {
      const out: Record<string, string> = {};
      const span = trace.getActiveSpan();
      if (span) {
        const ctx = span.spanContext();
        out.trace_id = ctx.traceId;
        out.span_id = ctx.spanId;
      }
      const migrationId = migrationIdOf();
      const bound = (logger as unknown as Record<symbol, string | undefined>)[chindings]?.includes('"migration_id":');
      if (migrationId && !bound && !('migration_id' in mergeObject)) out.migration_id = migrationId;
      return out;
    },
  });
}
