// pino JSON logs. Every line logged inside an active OpenTelemetry span carries trace_id and
// span_id (read from the span, no extra dependency); migration work adds migration_id through a
// child logger.

import pino, { type Logger } from 'pino';
import { trace } from '@opentelemetry/api';

export type { Logger };

export function createLogger(service: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    name: service,
    level: process.env.FERRY_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
    base: { service, pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const ctx = span.spanContext();
      return { trace_id: ctx.traceId, span_id: ctx.spanId };
    },
  });
}
