// One OpenTelemetry trace per migration, rooted in the coordinator: a root span for the
// migration, a child span per phase, and under the phase a span per round. The calls a step makes
// run in the context of the round in progress (else of the phase), so with the gRPC
// instrumentation registered they, and the spans of the per-host services that serve them, are
// its children: Jaeger shows the whole migration across the five services. The migration id
// rides along as W3C baggage (log lines in every service carry it), and the root's traceparent is
// kept in the record: a coordinator that takes the migration over continues the same trace under
// a "taken over" span.

import { ROOT_CONTEXT, SpanStatusCode, context, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import type { MigrationPhase } from '@ferry/proto';
import { withMigrationId } from '@ferry/runtime';
import { phaseName } from './phases';

const tracer = trace.getTracer('ferry.migration-coordinator');
const INVALID_TRACE_ID = /^0+$/;
const MIGRATION_ID = 'ferry.migration_id';

/** The context a stored traceparent stands for (the root context when there is none). */
export function contextOf(traceparent: string, migrationId?: string): Context {
  const ctx = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
  return migrationId ? withMigrationId(ctx, migrationId) : ctx;
}

interface OpenRound {
  span: Span;
  context: Context;
}

export class MigrationTrace {
  private phaseSpan: Span | undefined;
  private phaseContext: Context;
  private readonly rounds = new Map<number, OpenRound>();
  /** The round whose calls are being made (cleared when a phase begins). */
  private currentRound: OpenRound | undefined;

  private constructor(
    private readonly migrationId: string,
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
      attributes: { [MIGRATION_ID]: migrationId, ...attributes },
      links: request && trace.isSpanContextValid(request) ? [{ context: request }] : [],
    });
    return new MigrationTrace(migrationId, root, withMigrationId(trace.setSpan(ROOT_CONTEXT, root), migrationId));
  }

  /** Continues a stored trace (after a coordinator restart) under a span of its own. */
  static resume(migrationId: string, traceparent: string, epoch: number): MigrationTrace {
    const parent = contextOf(traceparent, migrationId);
    const span = tracer.startSpan(
      `migration ${migrationId} (taken over, epoch ${epoch})`,
      { attributes: { [MIGRATION_ID]: migrationId, 'ferry.epoch': epoch } },
      parent,
    );
    return new MigrationTrace(migrationId, span, trace.setSpan(parent, span));
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

  /** The context work of the current step runs in: the open round's, else the phase's. */
  get activeContext(): Context {
    return this.currentRound?.context ?? this.phaseContext;
  }

  /** The root's context (events are published under it). */
  get migrationContext(): Context {
    return this.rootContext;
  }

  /** Ends the previous phase's span and starts the next one's. */
  enterPhase(phase: MigrationPhase): void {
    this.phaseSpan?.end();
    const name = phaseName(phase);
    this.phaseSpan = tracer.startSpan(`phase ${name}`, { attributes: { [MIGRATION_ID]: this.migrationId, 'ferry.phase': name } }, this.rootContext);
    this.phaseContext = trace.setSpan(this.rootContext, this.phaseSpan);
    this.currentRound = undefined;
  }

  /**
   * Opens round `round`'s span (it stays open until the round is reported, which is after the
   * next round's CLEAN). A round prepared again as the final one (pre-copy stopped after its
   * CLEAN, before sending it) is the same round: its span is kept and marked final.
   */
  startRound(round: number, final: boolean): void {
    const open = this.rounds.get(round);
    if (open) {
      if (final) {
        open.span.updateName(`round ${round} (final)`);
        open.span.setAttribute('ferry.final', true);
      }
      this.currentRound = open;
      return;
    }
    const span = tracer.startSpan(
      `round ${round}${final ? ' (final)' : ''}`,
      { attributes: { [MIGRATION_ID]: this.migrationId, 'ferry.round': round, 'ferry.final': final } },
      this.phaseContext,
    );
    const opened = { span, context: trace.setSpan(this.phaseContext, span) };
    this.rounds.set(round, opened);
    this.currentRound = opened;
  }

  endRound(round: number, attributes: Record<string, number | string | boolean>): void {
    const open = this.rounds.get(round);
    if (!open) return;
    open.span.setAttributes(attributes);
    open.span.end();
    this.rounds.delete(round);
    // Later steps of the phase (the vCPU state after the final round) belong to the phase.
    if (this.currentRound === open) this.currentRound = undefined;
  }

  /** Runs `fn` inside the context of the current step (round or phase). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return context.with(this.activeContext, fn);
  }

  /** Ends every open span; `error` marks the root as failed. */
  end(outcome: string, error?: string): void {
    for (const open of this.rounds.values()) open.span.end();
    this.rounds.clear();
    this.currentRound = undefined;
    this.phaseSpan?.end();
    this.phaseSpan = undefined;
    this.root.setAttribute('ferry.outcome', outcome);
    if (error) this.root.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.root.end();
  }
}
