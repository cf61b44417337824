// One error type for everything a Ferry service refuses, carrying the gRPC status it maps to and a
// machine-readable reason, so callers (the CLI, users' gRPC clients) get a clear status with a reason.

import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { HypervisorError, type HypervisorErrorCode } from '@ferry/hypervisor';

export class FerryError extends Error {
  constructor(
    readonly code: status,
    /** A stable, machine-readable reason, e.g. "DOMAIN_NOT_FOUND". */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'FerryError';
  }
}

export const invalidArgument = (reason: string, message: string) => new FerryError(status.INVALID_ARGUMENT, reason, message);
export const notFound = (reason: string, message: string) => new FerryError(status.NOT_FOUND, reason, message);
export const failedPrecondition = (reason: string, message: string) => new FerryError(status.FAILED_PRECONDITION, reason, message);
export const alreadyExists = (reason: string, message: string) => new FerryError(status.ALREADY_EXISTS, reason, message);
export const unavailable = (reason: string, message: string) => new FerryError(status.UNAVAILABLE, reason, message);

const HYPERVISOR_STATUS: Record<HypervisorErrorCode, status> = {
  ESRCH: status.NOT_FOUND,
  EEXIST: status.ALREADY_EXISTS,
  ENOMEM: status.RESOURCE_EXHAUSTED,
  EINVAL: status.INVALID_ARGUMENT,
  E2BIG: status.INVALID_ARGUMENT,
  EBUSY: status.FAILED_PRECONDITION,
  ETIMEDOUT: status.DEADLINE_EXCEEDED,
  EIO: status.UNAVAILABLE,
};

/** The metadata key that carries FerryError.reason to clients. */
export const REASON_KEY = 'ferry-reason';

/** Turns anything thrown in a handler into a grpc-js ServiceError with a status and a reason. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const metadata = new Metadata();
  if (err instanceof FerryError) {
    metadata.set(REASON_KEY, err.reason);
    return { code: err.code, details: err.message, metadata };
  }
  if (err instanceof HypervisorError) {
    metadata.set(REASON_KEY, `HYPERVISOR_${err.code}`);
    return { code: HYPERVISOR_STATUS[err.code], details: err.message, metadata };
  }
  if (isServiceError(err)) return err; // a downstream call's error passes through with its status
  const message = err instanceof Error ? err.message : String(err);
  metadata.set(REASON_KEY, 'INTERNAL');
  return { code: status.INTERNAL, details: message, metadata };
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}

/** The reason a Ferry service attached to an error, if any. */
export function reasonOf(err: unknown): string | undefined {
  if (err instanceof FerryError) return err.reason;
  if (isServiceError(err)) {
    const v = err.metadata?.get(REASON_KEY)[0];
    return typeof v === 'string' ? v : undefined;
  }
  if (err instanceof HypervisorError) return `HYPERVISOR_${err.code}`;
  return undefined;
}
