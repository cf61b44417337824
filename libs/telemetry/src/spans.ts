// Small span helpers shared by the services' observability code.

import { SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api';

/** Span attribute of every span that works for a migration. */
export const MIGRATION_ID_ATTRIBUTE = 'ferry.migration_id';

/** Marks a span failed with the error (recorded as an exception event). */
export function markFailed(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.recordException(err instanceof Error ? err : message);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Attributes with bigint counts turned into numbers (span attributes have no bigint). */
export function countAttributes(values: Record<string, bigint | number | string | boolean | undefined>): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'bigint' ? Number(v) : v;
  }
  return out;
}
