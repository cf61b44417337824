// The journal of one migration: the only path by which its record changes. Writes are applied one
// at a time (a queue), each checked against the phase machine, stored with a revision
// compare-and-set, and then announced as events numbered 1, 2, 3, ... without gaps.
//
// The record is written before its events are published: the record is the truth, and it carries
// the sequence of the last event it produced (last_event_sequence), so a coordinator that takes
// the migration over can publish what a crash left out (see republishMissing). Publishing runs in
// its own ordered queue and is not awaited by the write, so steps inside the downtime window
// (COMMITTED) pay for one KV write, not for a JetStream publish as well. Once STOP_AND_COPY is
// announced, publishing is held (holdPublishing): the events of the downtime window wait until the
// guest runs on the target, so this process's event loop is free for the calls the guest waits on.

import type { Context } from '@opentelemetry/api';
import { Migration, MigrationEvent, MigrationOutcome, MigrationPhase, type MigrationFailure as FailureRecord } from '@ferry/proto';
import type { MigrationEvents, MigrationRecords } from '@ferry/cluster';
import type { Logger } from '@ferry/runtime';
import { allowedOutcomes, assertTransition, outcomeName, phaseName } from './phases';

export type EventBody = NonNullable<MigrationEvent['event']>;

/** A change to the record, and the events that announce it (computed from the changed record). */
export interface JournalWrite {
  change: (m: Migration) => void;
  events?: (m: Migration) => EventBody[];
}

const PUBLISH_ATTEMPTS = 5;
/** A hold on publishing that nobody releases ends by itself after this long. */
const MAX_PUBLISHING_HOLD_MS = 60_000;

/** The record without its round history, for events and lists. */
export function withoutRounds(m: Migration): Migration {
  return { ...m, rounds: [] };
}

export class MigrationJournal {
  private record: Migration;
  private revision: number;
  private writes: Promise<unknown> = Promise.resolve();
  private publishing: Promise<void> = Promise.resolve();
  private releaseHold: (() => void) | undefined;

  constructor(
    private readonly records: MigrationRecords,
    private readonly events: MigrationEvents,
    initial: Migration,
    revision: number,
    private readonly logger: Logger,
    /** The trace context events are published under (the migration's root span). */
    private readonly traceContext: () => Context,
  ) {
    this.record = initial;
    this.revision = revision;
  }

  /** The record as last written (a copy: callers cannot change the journal's state). */
  get current(): Migration {
    return Migration.fromPartial(this.record);
  }

  get id(): string {
    return this.record.id;
  }

  /**
   * Applies one change: the change function edits a copy (throwing refuses the write), the copy
   * is stored by compare-and-set, then its events are queued for publishing. Resolves with the
   * new record once it is stored.
   */
  write(w: JournalWrite): Promise<Migration> {
    const next = this.writes.then(() => this.apply(w));
    this.writes = next.catch(() => {});
    return next;
  }

  private async apply(w: JournalWrite): Promise<Migration> {
    const m = Migration.fromPartial(this.record);
    const phaseBefore = m.phase;
    w.change(m);
    if (m.phase !== phaseBefore) assertTransition(phaseBefore, m.phase);
    const now = new Date();
    m.updatedAt = now;
    const bodies = w.events?.(m) ?? [];
    const first = m.lastEventSequence + 1n;
    m.lastEventSequence += BigInt(bodies.length);
    this.revision = await this.records.update(m, this.revision);
    this.record = m;
    bodies.forEach((body, i) => this.queuePublish(this.eventFor(m, first + BigInt(i), now, body)));
    return Migration.fromPartial(m);
  }

  /** Announces a record just created in phase PENDING (its event 1). */
  announceCreation(): void {
    const m = this.record;
    this.queuePublish(
      this.eventFor(m, 1n, m.createdAt ?? new Date(), {
        $case: 'phaseChanged',
        phaseChanged: { from: MigrationPhase.MIGRATION_PHASE_UNSPECIFIED, to: MigrationPhase.MIGRATION_PHASE_PENDING, reason: 'accepted' },
      }),
    );
  }

  /**
   * Enters a phase (recording when) and announces it; `change` adds facts to the same write, and
   * `carried` is an earlier write that rides along (applied and announced first).
   */
  enterPhase(to: MigrationPhase, reason: string, change?: (m: Migration) => void, carried?: JournalWrite): Promise<Migration> {
    let from = MigrationPhase.MIGRATION_PHASE_UNSPECIFIED;
    return this.write({
      change: (m) => {
        carried?.change(m);
        from = m.phase;
        m.phase = to;
        m.phaseTransitions.push({ phase: to, enteredAt: new Date() });
        change?.(m);
      },
      events: (m) => [...(carried?.events?.(m) ?? []), { $case: 'phaseChanged', phaseChanged: { from, to, reason } }],
    });
  }

  /**
   * Ends the migration: DONE with its outcome, announced by PhaseChanged and then the terminal
   * event (MigrationCompleted, MigrationFailed or MigrationCancelled). Resolves once both are
   * published, so a caller that returns afterwards leaves nothing unannounced.
   */
  async finish(outcome: MigrationOutcome, reason: string, change?: (m: Migration) => void): Promise<Migration> {
    let from = MigrationPhase.MIGRATION_PHASE_UNSPECIFIED;
    const m = await this.write({
      change: (m) => {
        from = m.phase;
        if (!allowedOutcomes(from).includes(outcome)) {
          throw new Error(`outcome ${outcomeName(outcome)} cannot follow phase ${phaseName(from)}`);
        }
        m.phase = MigrationPhase.MIGRATION_PHASE_DONE;
        m.outcome = outcome;
        m.phaseTransitions.push({ phase: MigrationPhase.MIGRATION_PHASE_DONE, enteredAt: new Date() });
        change?.(m);
        if (m.totals && m.createdAt) m.totals.totalMs = BigInt(Math.max(0, Date.now() - m.createdAt.getTime()));
      },
      events: (m) => [{ $case: 'phaseChanged', phaseChanged: { from, to: MigrationPhase.MIGRATION_PHASE_DONE, reason } }, terminalEvent(m)],
    });
    await this.flush();
    return m;
  }

  /**
   * Events queued from now on wait until releasePublishing (or flush) is called; record writes go
   * on as before. For the downtime window: the events are announced once the guest runs again.
   */
  holdPublishing(): void {
    if (this.releaseHold) return;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const timer = setTimeout(() => this.releasePublishing(), MAX_PUBLISHING_HOLD_MS);
    timer.unref();
    this.releaseHold = () => {
      clearTimeout(timer);
      open();
    };
    this.publishing = this.publishing.then(() => gate);
  }

  /** Ends a hold: the events queued during it are published, in order. */
  releasePublishing(): void {
    const release = this.releaseHold;
    this.releaseHold = undefined;
    release?.();
  }

  /** Waits until every queued event is published (or given up on); ends any hold first. */
  async flush(): Promise<void> {
    await this.writes;
    this.releasePublishing();
    await this.publishing;
  }

  /**
   * After a takeover: publishes what the previous coordinator wrote but did not announce (the
   * stream's last sequence is below the record's). Only the latest state can be rebuilt from the
   * record, so the gap is filled with the event that describes it.
   */
  async republishMissing(lastPublished: bigint): Promise<number> {
    const m = this.record;
    const missing = m.lastEventSequence - lastPublished;
    if (missing <= 0n) return 0;
    const bodies: EventBody[] = [];
    if (m.phase === MigrationPhase.MIGRATION_PHASE_DONE) {
      bodies.push(terminalEvent(m));
    } else {
      const transitions = m.phaseTransitions;
      const from = transitions.length >= 2 ? transitions[transitions.length - 2].phase : MigrationPhase.MIGRATION_PHASE_UNSPECIFIED;
      bodies.push({ $case: 'phaseChanged', phaseChanged: { from, to: m.phase, reason: 'republished by the coordinator that took the migration over' } });
    }
    // The last sequences of the gap carry the rebuilt events, so numbering stays gap-free for
    // readers that resume after the last event they saw.
    const first = m.lastEventSequence - BigInt(bodies.length) + 1n;
    bodies.forEach((body, i) => this.queuePublish(this.eventFor(m, first + BigInt(i), new Date(), body)));
    await this.flush();
    return bodies.length;
  }

  private eventFor(m: Migration, sequence: bigint, time: Date, body: EventBody): MigrationEvent {
    const withRecord = body.$case !== 'roundCompleted';
    return MigrationEvent.fromPartial({
      migrationId: m.id,
      sequence,
      time,
      event: body,
      ...(withRecord ? { migration: m } : {}),
    });
  }

  private queuePublish(event: MigrationEvent): void {
    this.publishing = this.publishing.then(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.events.publish(event, this.traceContext());
          return;
        } catch (err) {
          if (attempt >= PUBLISH_ATTEMPTS) {
            // The record holds the truth; a coordinator taking over republishes the gap.
            this.logger.error({ err, sequence: Number(event.sequence) }, 'could not publish a migration event');
            return;
          }
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
    });
  }
}

/** The terminal event that describes an ended migration. */
export function terminalEvent(m: Migration): EventBody {
  switch (m.outcome) {
    case MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED:
      return { $case: 'migrationCompleted', migrationCompleted: { totals: m.totals } };
    case MigrationOutcome.MIGRATION_OUTCOME_CANCELLED:
      return {
        $case: 'migrationCancelled',
        migrationCancelled: { reason: m.cancelReason, phase: m.failure?.phase ?? MigrationPhase.MIGRATION_PHASE_UNSPECIFIED },
      };
    default:
      return { $case: 'migrationFailed', migrationFailed: { failure: m.failure as FailureRecord | undefined, outcome: m.outcome } };
  }
}
