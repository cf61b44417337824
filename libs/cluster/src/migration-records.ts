// Migration records: one NATS KV entry per migration (bucket `ferry_migrations`, key = migration
// id, value = the Migration proto as JSON, readable with `nats kv get ferry_migrations <id>`). The
// coordinator is the single writer, and every write after the first is a compare-and-set on the
// revision it read: a write based on a stale revision is refused (MigrationRecordConflict), never
// merged or overwritten, so two writers can never silently undo each other.
//
// The idempotency keys of StartMigration live in bucket `ferry_migration_requests` (key = sha256
// of the client's key, value = migration id), claimed with a create so that two claims of one key
// cannot both win.

import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Migration } from '@ferry/proto';
import { bucketKeys } from './kv-keys';

export const MIGRATION_BUCKET = 'ferry_migrations';
export const REQUEST_BUCKET = 'ferry_migration_requests';

/** A record and the KV revision it was read at (what the next update must name). */
export interface VersionedMigration {
  migration: Migration;
  revision: number;
}

/** A compare-and-set lost: the record changed since `expectedRevision` was read. */
export class MigrationRecordConflict extends Error {
  constructor(
    readonly migrationId: string,
    readonly expectedRevision: number,
  ) {
    super(`migration record ${migrationId} changed since revision ${expectedRevision} (another writer?)`);
    this.name = 'MigrationRecordConflict';
  }
}

/** create() of an id that is taken. */
export class MigrationRecordExists extends Error {
  constructor(readonly migrationId: string) {
    super(`migration record ${migrationId} exists already`);
    this.name = 'MigrationRecordExists';
  }
}

/** Ids become KV keys and NATS subject tokens: keep them to a safe alphabet. */
export function isValidMigrationId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,128}$/.test(id);
}

function isWrongLastSequence(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function encode(m: Migration): string {
  return JSON.stringify(Migration.toJSON(m));
}

function decode(text: string): Migration {
  return Migration.fromJSON(JSON.parse(text));
}

/** Client keys are free text; KV keys are not: hash them. */
function requestKey(requestId: string): string {
  return createHash('sha256').update(requestId).digest('hex');
}

export class MigrationRecords {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly requests: KV,
  ) {}

  /** Opens the buckets, creating them on first use. */
  static async open(nc: NatsConnection): Promise<MigrationRecords> {
    const kvm = new Kvm(nc);
    return new MigrationRecords(nc, await kvm.create(MIGRATION_BUCKET, { history: 5 }), await kvm.create(REQUEST_BUCKET, { history: 1 }));
  }

  /** Stores a new record; MigrationRecordExists when the id is taken. Returns the revision. */
  async create(m: Migration): Promise<number> {
    if (!isValidMigrationId(m.id)) throw new RangeError(`invalid migration id "${m.id}"`);
    try {
      return await this.kv.create(m.id, encode(m));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new MigrationRecordExists(m.id);
      throw err;
    }
  }

  /** Replaces the record if it is still at `expectedRevision`; MigrationRecordConflict otherwise. */
  async update(m: Migration, expectedRevision: number): Promise<number> {
    try {
      return await this.kv.update(m.id, encode(m), expectedRevision);
    } catch (err) {
      if (isWrongLastSequence(err)) throw new MigrationRecordConflict(m.id, expectedRevision);
      throw err;
    }
  }

  async get(id: string): Promise<VersionedMigration | undefined> {
    if (!isValidMigrationId(id)) return undefined;
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT') return undefined;
    return { migration: decode(e.string()), revision: e.revision };
  }

  /** Every record (unordered). */
  async list(): Promise<VersionedMigration[]> {
    const out: VersionedMigration[] = [];
    // Each key once, also when records are written while the listing runs (kv-keys.ts).
    for (const key of await bucketKeys(this.nc, MIGRATION_BUCKET)) {
      const e = await this.kv.get(key);
      if (e && e.operation === 'PUT') out.push({ migration: decode(e.string()), revision: e.revision });
    }
    return out;
  }

  /**
   * Binds an idempotency key to a migration id, first come first served. Returns the id the key
   * is bound to: `migrationId` when this call claimed it, the earlier id otherwise.
   */
  async claimRequestId(requestId: string, migrationId: string): Promise<string> {
    const key = requestKey(requestId);
    try {
      await this.requests.create(key, migrationId);
      return migrationId;
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      const e = await this.requests.get(key);
      if (!e || e.operation !== 'PUT') throw err;
      return e.string();
    }
  }

  /** The migration id an idempotency key is bound to, if any. */
  async lookupRequestId(requestId: string): Promise<string | undefined> {
    const e = await this.requests.get(requestKey(requestId));
    return e && e.operation === 'PUT' ? e.string() : undefined;
  }
}
