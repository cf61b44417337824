// Fencing of migration commands (common.proto, message Fence). A per-host service remembers,
// per object it guards (the host agent: per domain), which migration holds it and the highest
// coordinator epoch it accepted from that migration:
//  - the first fenced call binds the object to the call's migration;
//  - while bound, fenced calls of another migration fail with FAILED_PRECONDITION, and so do
//    unfenced (operator) calls that would change the object;
//  - a call of the bound migration with a lower epoch fails with ABORTED (a stale coordinator
//    that lost its lease); an equal or higher epoch is accepted and becomes the highest;
//  - release() ends the binding.
//
// The table lives in process memory only: it survives nothing more than the process. A restarted
// service starts with every object unbound, and the coordinator's next fenced call binds again.
// That is safe because a migration's steps are idempotent and the coordinator re-runs pre-flight
// after taking a migration over; what is lost is only the refusal of a stale coordinator during
// the restart window.

import { status } from '@grpc/grpc-js';
import { FerryError, failedPrecondition, invalidArgument } from '@ferry/runtime';

/** The two fields of a ferry.v1.Fence. */
export interface FenceLike {
  migrationId: string;
  epoch: bigint;
}

export interface FenceBinding {
  readonly migrationId: string;
  /** The highest epoch accepted from that migration. */
  readonly epoch: bigint;
}

/** Longest migration id accepted (Migration.id is a short generated identifier). */
const MAX_MIGRATION_ID_LENGTH = 200;

/** Throws INVALID_ARGUMENT for a fence without a migration id or with epoch 0. */
export function checkFence(fence: FenceLike, what: string): void {
  if (fence.migrationId === '' || fence.migrationId.length > MAX_MIGRATION_ID_LENGTH) {
    throw invalidArgument('FENCE_INVALID', `${what}: fence.migration_id must be 1-${MAX_MIGRATION_ID_LENGTH} characters`);
  }
  if (fence.epoch <= 0n) {
    throw invalidArgument('FENCE_INVALID', `${what}: fence.epoch must be at least 1 (migration ${fence.migrationId})`);
  }
}

/** The fence a call must carry (CreateRestoreDomain, ReleaseDomain, the balloon's calls). */
export function requireFence(fence: FenceLike | undefined, what: string): FenceLike {
  if (!fence) throw invalidArgument('FENCE_REQUIRED', `${what} needs a fence (the migration it belongs to)`);
  checkFence(fence, what);
  return fence;
}

export class FenceTable<K> {
  private readonly bindings = new Map<K, FenceBinding>();

  /** @param describe names a key in error messages, e.g. (domid) => `domain ${domid}`. */
  constructor(private readonly describe: (key: K) => string) {}

  holder(key: K): FenceBinding | undefined {
    return this.bindings.get(key);
  }

  keys(): K[] {
    return [...this.bindings.keys()];
  }

  /**
   * Admits a call that changes `key`: an unfenced call only while nobody holds it; a fenced call
   * of the holding migration at the highest epoch or above (which raises the epoch), or of any
   * migration while nobody holds it (which binds it). Synchronous, so that a check and the
   * binding it makes cannot interleave with another call.
   */
  admit(key: K, fence: FenceLike | undefined, what: string): void {
    const held = this.bindings.get(key);
    if (!fence) {
      if (held) {
        throw failedPrecondition(
          'DOMAIN_HELD_BY_MIGRATION',
          `${what}: ${this.describe(key)} is held by migration ${held.migrationId}; cancel the migration or wait for it to finish`,
        );
      }
      return;
    }
    checkFence(fence, what);
    if (!held) {
      this.bindings.set(key, { migrationId: fence.migrationId, epoch: fence.epoch });
      return;
    }
    this.checkHolder(key, held, fence, what);
    if (fence.epoch > held.epoch) this.bindings.set(key, { migrationId: held.migrationId, epoch: fence.epoch });
  }

  /** Like admit() for a fenced call, but never binds: for calls that only make sense for the holder. */
  check(key: K, fence: FenceLike, what: string): FenceBinding | undefined {
    checkFence(fence, what);
    const held = this.bindings.get(key);
    if (held) this.checkHolder(key, held, fence, what);
    return held;
  }

  /**
   * Ends the binding of `fence`'s migration. False when `key` is not bound to that migration (a
   * retried release, or one for an object another migration holds now). ABORTED for a stale epoch.
   */
  release(key: K, fence: FenceLike, what: string): boolean {
    checkFence(fence, what);
    const held = this.bindings.get(key);
    if (!held || held.migrationId !== fence.migrationId) return false;
    this.checkHolder(key, held, fence, what);
    this.bindings.delete(key);
    return true;
  }

  /** Drops the binding without checks: the object is gone (destroyed). */
  forget(key: K): void {
    this.bindings.delete(key);
  }

  private checkHolder(key: K, held: FenceBinding, fence: FenceLike, what: string): void {
    if (held.migrationId !== fence.migrationId) {
      throw failedPrecondition(
        'DOMAIN_HELD_BY_MIGRATION',
        `${what}: ${this.describe(key)} is held by migration ${held.migrationId}, not ${fence.migrationId}`,
      );
    }
    if (fence.epoch < held.epoch) {
      throw new FerryError(
        status.ABORTED,
        'FENCE_STALE_EPOCH',
        `${what}: epoch ${fence.epoch} of migration ${fence.migrationId} is stale; ${this.describe(key)} has accepted epoch ${held.epoch}`,
      );
    }
  }
}
