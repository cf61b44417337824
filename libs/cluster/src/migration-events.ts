// Migration events in NATS JetStream: stream FERRY_EVENTS holds every subject under `ferry.>`
// (DESIGN.md); a migration's events are on `ferry.migrations.<id>.<kind>`, with MigrationEvent
// protobuf payloads. Each event is published with the message id `<id>:<sequence>`, so a publish
// retried after a lost ack (or re-sent by a coordinator that took the migration over) is stored
// once; and inside a PRODUCER span whose context travels in the `traceparent` header, so a
// consumer's span (CONSUMER, see follow) joins the migration's trace.
//
// Readers replay a migration's events from the start, in order (one subject filter per
// migration, an ordered consumer), optionally following new ones until the terminal event.
// A stream created by an earlier version with the narrower `ferry.migrations.>` is widened on open.

import { SpanKind, SpanStatusCode, context, trace, type Context, type Span } from '@opentelemetry/api';
import { DeliverPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { MigrationEvent } from '@ferry/proto';
import { isValidMigrationId } from './migration-records';
import { contextFromHeaders, headersWithContext } from './trace-headers';

export const EVENT_STREAM = 'FERRY_EVENTS';
/** Everything Ferry publishes; migration events are one part of it. */
export const EVENT_STREAM_SUBJECTS = 'ferry.>';
export const EVENT_SUBJECT_PREFIX = 'ferry.migrations';
/** Window in which the stream drops a message id it has seen (a retried publish). */
const DUPLICATE_WINDOW_MS = 10 * 60_000;

/** The oneof case of MigrationEvent.event; its snake_case form ends the event's subject. */
export type MigrationEventKind = NonNullable<MigrationEvent['event']>['$case'];

/** `ferry.migrations.<id>.phase_changed`, `....round_completed`, `....migration_failed`, ... */
export function eventSubject(migrationId: string, kind: MigrationEventKind): string {
  return `${EVENT_SUBJECT_PREFIX}.${migrationId}.${kind.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
}

/** Every subject of one migration's events. */
export function migrationSubjects(migrationId: string): string {
  return `${EVENT_SUBJECT_PREFIX}.${migrationId}.>`;
}

/** The events after which nothing more happens to a migration. */
export function isTerminalEvent(e: MigrationEvent): boolean {
  const kind = e.event?.$case;
  return kind === 'migrationCompleted' || kind === 'migrationFailed' || kind === 'migrationCancelled';
}

/** The message id that makes a publish idempotent. */
export function eventMessageId(e: Pick<MigrationEvent, 'migrationId' | 'sequence'>): string {
  return `${e.migrationId}:${e.sequence}`;
}

/** An event read back, with the trace context it was published under. */
export interface StoredEvent {
  event: MigrationEvent;
  subject: string;
  /** The W3C traceparent header, when the publisher had an active trace. */
  traceparent?: string;
}

export interface ReadEventsOptions {
  /** Skip events up to and including this sequence (resume after what a reader saw). */
  afterSequence?: number;
  /** Keep waiting for new events after the replay, until the terminal event. */
  follow?: boolean;
  /** Ends the read (the iterator returns). */
  signal?: AbortSignal;
}

export interface FollowOptions {
  /** Ends the follow (`done` resolves). */
  signal: AbortSignal;
  /** A message that is not a MigrationEvent (it is skipped). */
  onUndecodable?: (subject: string, err: unknown) => void;
}

const tracer = trace.getTracer('ferry.cluster.events');

/** The kind token of a subject (`ferry.migrations.<id>.<kind>`). */
function kindOf(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}

/** Span attributes of one event message (OTel messaging conventions; NATS has no registered name). */
function messagingAttributes(operation: 'send' | 'process', subject: string, messageId: string, migrationId: string) {
  return {
    'messaging.system': 'nats',
    'messaging.operation.type': operation,
    'messaging.destination.name': subject,
    'messaging.message.id': messageId,
    'ferry.migration_id': migrationId,
  };
}

export class MigrationEvents {
  private constructor(private readonly js: JetStreamClient) {}

  /** Connects to the stream, creating it on first use (and widening an old one). */
  static async open(nc: NatsConnection): Promise<MigrationEvents> {
    const jsm = await jetstreamManager(nc);
    try {
      const info = await jsm.streams.info(EVENT_STREAM);
      // A stream from before `ferry.>`: widened in place (its messages and settings stay).
      if (!info.config.subjects?.includes(EVENT_STREAM_SUBJECTS)) await jsm.streams.update(EVENT_STREAM, { subjects: [EVENT_STREAM_SUBJECTS] });
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      try {
        await jsm.streams.add({
          name: EVENT_STREAM,
          subjects: [EVENT_STREAM_SUBJECTS],
          duplicate_window: nanos(DUPLICATE_WINDOW_MS),
        });
      } catch (addErr) {
        // Another process created it between our info and add: that is what we wanted.
        await jsm.streams.info(EVENT_STREAM).catch(() => {
          throw addErr;
        });
      }
    }
    return new MigrationEvents(jetstream(nc));
  }

  /**
   * Publishes one event in a PRODUCER span under `ctx` (the active context by default; the
   * coordinator passes the migration's). Resolves once the stream stored it; `duplicate` is true
   * when the stream had it already (same id:sequence).
   */
  async publish(event: MigrationEvent, ctx: Context = context.active()): Promise<{ duplicate: boolean; streamSequence: number }> {
    const kind = event.event?.$case;
    if (!kind) throw new RangeError('a migration event needs an event case');
    if (!isValidMigrationId(event.migrationId)) throw new RangeError(`invalid migration id "${event.migrationId}"`);
    if (event.sequence < 1n) throw new RangeError('event sequences start at 1');
    const subject = eventSubject(event.migrationId, kind);
    const msgID = eventMessageId(event);
    const span = tracer.startSpan(
      `publish ${kindOf(subject)}`,
      { kind: SpanKind.PRODUCER, attributes: { ...messagingAttributes('send', subject, msgID, event.migrationId), 'ferry.event_sequence': Number(event.sequence) } },
      ctx,
    );
    try {
      const ack = await this.js.publish(subject, MigrationEvent.encode(event).finish(), {
        msgID,
        headers: headersWithContext(trace.setSpan(ctx, span)),
      });
      span.setAttribute('ferry.duplicate', ack.duplicate);
      return { duplicate: ack.duplicate, streamSequence: ack.seq };
    } catch (err) {
      markFailed(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  /** A migration's events in order, from the first (or after `afterSequence`). */
  async *read(migrationId: string, opts: ReadEventsOptions = {}): AsyncGenerator<StoredEvent> {
    if (!isValidMigrationId(migrationId)) return;
    const after = BigInt(opts.afterSequence ?? 0);
    const consumer = await this.js.consumers.get(EVENT_STREAM, { filter_subjects: migrationSubjects(migrationId) });
    try {
      const stored = (await consumer.info(true)).num_pending;
      if (stored === 0 && !opts.follow) return;
      if (opts.signal?.aborted) return;
      const messages = await consumer.consume({ max_messages: 256 });
      const stop = () => messages.stop();
      opts.signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const m of messages) {
          const event = MigrationEvent.decode(m.data);
          if (event.sequence > after) {
            const traceparent = m.headers?.get('traceparent') || undefined;
            yield traceparent ? { event, subject: m.subject, traceparent } : { event, subject: m.subject };
          }
          if (isTerminalEvent(event)) break;
          if (!opts.follow && m.info.pending === 0) break;
        }
      } finally {
        opts.signal?.removeEventListener('abort', stop);
        messages.stop();
      }
    } finally {
      await consumer.delete().catch(() => {});
    }
  }

  /**
   * Follows every migration's events: resolves once following, with `done`, which resolves when
   * `signal` aborts (or the connection closes). Every event stored after the call resolved is
   * handled, in order, inside a CONSUMER span that continues the trace its headers carry. An
   * error thrown by `handle` ends the follow (`done` rejects with it).
   */
  async follow(handle: (e: StoredEvent) => void | Promise<void>, opts: FollowOptions): Promise<{ done: Promise<void> }> {
    // Start after the stream's last message as of now (not "new messages once the consumer
    // exists"), so that what follows the returned promise is never missed.
    const jsm = await this.js.jetstreamManager();
    const last = (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
    const consumer = await this.js.consumers.get(EVENT_STREAM, {
      filter_subjects: `${EVENT_SUBJECT_PREFIX}.>`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: last + 1,
    });
    const messages = await consumer.consume({ max_messages: 256 });
    const stop = () => messages.stop();
    if (opts.signal.aborted) stop();
    opts.signal.addEventListener('abort', stop, { once: true });
    const done = (async () => {
      try {
        for await (const m of messages) {
          let event: MigrationEvent;
          try {
            event = MigrationEvent.decode(m.data);
          } catch (err) {
            opts.onUndecodable?.(m.subject, err);
            continue;
          }
          const traceparent = m.headers?.get('traceparent') || undefined;
          const stored: StoredEvent = traceparent ? { event, subject: m.subject, traceparent } : { event, subject: m.subject };
          const attributes = { ...messagingAttributes('process', m.subject, eventMessageId(event), event.migrationId), 'ferry.event_sequence': Number(event.sequence) };
          await tracer.startActiveSpan(`process ${kindOf(m.subject)}`, { kind: SpanKind.CONSUMER, attributes }, contextFromHeaders(m.headers), async (span) => {
            try {
              await handle(stored);
            } catch (err) {
              markFailed(span, err);
              throw err;
            } finally {
              span.end();
            }
          });
        }
      } finally {
        opts.signal.removeEventListener('abort', stop);
        messages.stop();
        await consumer.delete().catch(() => {});
      }
    })();
    return { done };
  }

  /** The highest sequence published for a migration so far (0 when none). */
  async lastSequence(migrationId: string): Promise<bigint> {
    let last = 0n;
    for await (const { event } of this.read(migrationId)) if (event.sequence > last) last = event.sequence;
    return last;
  }
}

function markFailed(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.recordException(err instanceof Error ? err : message);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
