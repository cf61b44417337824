// One OpenTelemetry trace per migration, rooted in the coordinator: a root span for the
// migration, a child span per phase and per round. gRPC calls made inside a phase's context
// become its children (with the gRPC instrumentation registered), so Jaeger shows the whole
// migration across the per-host services. The root's traceparent is kept in the record, and a
// coordinator that takes the migration over continues the same trace under a "taken over" span.

import { ROOT_CONTEXT, SpanStatusCode, context, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import type { MigrationPhase } from '@ferry/proto';
import { phaseName } from './phases';

const tracer = trace.getTracer('ferry.migration-coordinator');
const INVALID_TRACE_ID = /^0+$/;

/** The context a stored traceparent stands for (the root context when there is none). */
export function contextOf(traceparent: string): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

export class MigrationTrace {
  private phaseSpan: Span | undefined;
  private phaseContext: Context;
  private readonly rounds = new Map<number, Span>();

  private constructor(
    private readonly root: Span,
    private readonly rootContext: Context,
  ) {
    this.phaseContext = rootContext;
  }

  /** A new trace for a new migration, linked to the request that started it (if traced). */
  static start(migrationId: string, attributes: Record<string, string | number>): MigrationTrace {
    const request = trace.getActiveSpan()?.spanContext();
    const root = tracer.startSpan(`migration ${migrationId}`, {
      root: true,
      attributes: { 'ferry.migration_id': migrationId, ...attributes },
      links: request && trace.isSpanContextValid(request) ? [{ context: request }] : [],
    });
    return new MigrationTrace(root, trace.setSpan(ROOT_CONTEXT, root));
  }

  /** Continues a stored trace (after a coordinator restart) under a span of its own. */
  static resume(migrationId: string, traceparent: string, epoch: number): MigrationTrace {
    const parent = contextOf(traceparent);
    const span = tracer.startSpan(
      `migration ${migrationId} (taken over, epoch ${epoch})`,
      { attributes: { 'ferry.migration_id': migrationId, 'ferry.epoch': epoch } },
      parent,
    );
    return new MigrationTrace(span, trace.setSpan(parent, span));
  }

  /** The trace id (32 hex digits), or '' when no tracer is registered. */
  get traceId(): string {
    const id = this.root.spanContext().traceId;
    return INVALID_TRACE_ID.test(id) ? '' : id;
  }

  /** The W3C traceparent of the root span ('' when no propagator is registered). */
  get traceparent(): string {
    const carrier: Record<string, string> = {};
    propagation.inject(this.rootContext, carrier);
    return carrier.traceparent ?? '';
  }

  /** The context work of the current phase runs in. */
  get activeContext(): Context {
    return this.phaseContext;
  }

  /** The root's context (events are published under it). */
  get migrationContext(): Context {
    return this.rootContext;
  }

  /** Ends the previous phase's span and starts the next one's. */
  enterPhase(phase: MigrationPhase): void {
    this.phaseSpan?.end();
    this.phaseSpan = tracer.startSpan(`phase ${phaseName(phase)}`, {}, this.rootContext);
    this.phaseContext = trace.setSpan(this.rootContext, this.phaseSpan);
  }

  startRound(round: number, final: boolean): void {
    this.rounds.get(round)?.end();
    this.rounds.set(round, tracer.startSpan(`round ${round}${final ? ' (final)' : ''}`, { attributes: { 'ferry.round': round, 'ferry.final': final } }, this.phaseContext));
  }

  endRound(round: number, attributes: Record<string, number | string | boolean>): void {
    const span = this.rounds.get(round);
    if (!span) return;
    span.setAttributes(attributes);
    span.end();
    this.rounds.delete(round);
  }

  /** Runs `fn` inside the current phase's context. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return context.with(this.phaseContext, fn);
  }

  /** Ends every open span; `error` marks the root as failed. */
  end(outcome: string, error?: string): void {
    for (const span of this.rounds.values()) span.end();
    this.rounds.clear();
    this.phaseSpan?.end();
    this.phaseSpan = undefined;
    this.root.setAttribute('ferry.outcome', outcome);
    if (error) this.root.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.root.end();
  }
}
