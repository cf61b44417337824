// Migration events in NATS JetStream: stream FERRY_EVENTS, subjects
// `ferry.migrations.<id>.<kind>`, MigrationEvent protobuf payloads. Each event is published with
// the message id `<id>:<sequence>`, so a publish retried after a lost ack (or re-sent by a
// coordinator that took the migration over) is stored once; and with a `traceparent` header when
// an OpenTelemetry context is active, so a consumer can continue the migration's trace.
//
// Readers replay a migration's events from the start, in order (one subject filter per
// migration, an ordered consumer), optionally following new ones until the terminal event.

import { context, propagation, type Context } from '@opentelemetry/api';
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { headers, nanos, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { MigrationEvent } from '@ferry/proto';
import { isValidMigrationId } from './migration-records';

export const EVENT_STREAM = 'FERRY_EVENTS';
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

const headerSetter = { set: (carrier: MsgHdrs, key: string, value: string) => carrier.set(key, value) };

export class MigrationEvents {
  private constructor(private readonly js: JetStreamClient) {}

  /** Connects to the stream, creating it on first use. */
  static async open(nc: NatsConnection): Promise<MigrationEvents> {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(EVENT_STREAM);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      try {
        await jsm.streams.add({
          name: EVENT_STREAM,
          subjects: [`${EVENT_SUBJECT_PREFIX}.>`],
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
   * Publishes one event under the trace context `ctx` (the active one by default). Resolves once
   * the stream stored it; `duplicate` is true when the stream had it already (same id:sequence).
   */
  async publish(event: MigrationEvent, ctx: Context = context.active()): Promise<{ duplicate: boolean; streamSequence: number }> {
    const kind = event.event?.$case;
    if (!kind) throw new RangeError('a migration event needs an event case');
    if (!isValidMigrationId(event.migrationId)) throw new RangeError(`invalid migration id "${event.migrationId}"`);
    if (event.sequence < 1n) throw new RangeError('event sequences start at 1');
    const h = headers();
    propagation.inject(ctx, h, headerSetter);
    const ack = await this.js.publish(eventSubject(event.migrationId, kind), MigrationEvent.encode(event).finish(), {
      msgID: eventMessageId(event),
      headers: h,
    });
    return { duplicate: ack.duplicate, streamSequence: ack.seq };
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

  /** The highest sequence published for a migration so far (0 when none). */
  async lastSequence(migrationId: string): Promise<bigint> {
    let last = 0n;
    for await (const { event } of this.read(migrationId)) if (event.sequence > last) last = event.sequence;
    return last;
  }
}
