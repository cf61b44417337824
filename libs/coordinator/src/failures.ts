// Why a migration run stops early, as values the phase machine can act on: a failure with a
// machine-readable code (and the host and pre-flight reasons where they apply), a cancel, or the
// coordinator shutting down (the record stays as it is, for the next coordinator to take over).

import { status } from '@grpc/grpc-js';
import { FailureCode, type PreflightReason } from '@ferry/proto';
import { FerryError, isServiceError } from '@ferry/runtime';

export class MigrationFailure extends Error {
  constructor(
    readonly code: FailureCode,
    message: string,
    readonly host = '',
    readonly preflightReasons: PreflightReason[] = [],
    /** The gRPC status of the call that failed, when a call failed. */
    readonly grpcCode?: status,
  ) {
    super(message);
    this.name = 'MigrationFailure';
  }
}

/** The migration was cancelled; thrown at the next step boundary after CancelMigration. */
export class MigrationCancelled extends Error {
  constructor(readonly reason: string) {
    super(`cancelled: ${reason}`);
    this.name = 'MigrationCancelled';
  }
}

/** The coordinator is stopping: leave the migration where it is (recovery continues it). */
export class CoordinatorStopping extends Error {
  constructor() {
    super('the coordinator is shutting down');
    this.name = 'CoordinatorStopping';
  }
}

/**
 * Errors worth retrying: the service could not be reached (restarting, connection dropped). Every
 * other status is an answer, and retrying an answer only repeats it.
 */
export function isTransient(err: unknown): boolean {
  return (isServiceError(err) && err.code === status.UNAVAILABLE) || isHostUnregistered(err);
}

/** The host's registry entry expired (its agent stopped heartbeating): it may come back. */
export function isHostUnregistered(err: unknown): boolean {
  return err instanceof FerryError && err.reason === 'HOST_NOT_FOUND';
}

/** The gRPC status of an error from a per-host service, if it is one. */
export function grpcStatus(err: unknown): status | undefined {
  return isServiceError(err) ? err.code : undefined;
}

/** A short, one-line description of what went wrong. */
export function describeError(err: unknown): string {
  if (isServiceError(err)) return `${status[err.code] ?? err.code}: ${err.details || err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The failure a step's error stands for: `fallback` (what the step does, e.g. TRANSFER_FAILED),
 * unless the error says something more specific (a host gone, a stale fence, the domain gone).
 */
export function classifyStepError(err: unknown, fallback: FailureCode, step: string, host: string, throughPeer = false): MigrationFailure {
  if (err instanceof MigrationFailure) return err;
  if (isHostUnregistered(err)) return new MigrationFailure(FailureCode.FAILURE_CODE_HOST_UNREACHABLE, `${step}: ${describeError(err)}`, host);
  let code = fallback;
  switch (grpcStatus(err)) {
    case status.UNAVAILABLE:
      if (!throughPeer) code = FailureCode.FAILURE_CODE_HOST_UNREACHABLE;
      break;
    case status.ABORTED:
      code = FailureCode.FAILURE_CODE_FENCED;
      break;
    default:
      break;
  }
  return new MigrationFailure(code, `${step}${host ? ` on ${host}` : ''}: ${describeError(err)}`, host, [], grpcStatus(err));
}

/** The step failed because the thing it acts on does not exist (a domain gone, a session closed). */
export function isNotFound(err: unknown): boolean {
  return (err instanceof MigrationFailure && err.grpcCode === status.NOT_FOUND) || grpcStatus(err) === status.NOT_FOUND;
}
