// Errors of the Ferry API as the SDK reports them: the gRPC status (number and name), Ferry's
// machine-readable reason (the `ferry-reason` trailer, e.g. "HOST_NOT_FOUND"), and the message.

import { status, type ServiceError } from '@grpc/grpc-js';
import { REASON_KEY } from '@ferry/runtime';

export class FerryClientError extends Error {
  constructor(
    /** The gRPC status code, e.g. status.NOT_FOUND (5). */
    readonly code: status,
    /** Ferry's reason, e.g. "DOMAIN_NOT_FOUND"; empty when the server gave none. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'FerryClientError';
  }

  /** The status name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }

  toJSON(): { code: string; reason: string; message: string } {
    return { code: this.codeName, reason: this.reason, message: this.message };
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}

/** Any error from a call, as a FerryClientError (errors that are not gRPC statuses pass through). */
export function toClientError(err: unknown): unknown {
  if (!isServiceError(err)) return err;
  const reason = err.metadata?.get(REASON_KEY)[0];
  return new FerryClientError(err.code, typeof reason === 'string' ? reason : '', err.details || err.message);
}
