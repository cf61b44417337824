// Promise wrappers over grpc-js: handlers written as async functions, and unary client calls with
// deadlines. ts-proto's grpc-js output is callback-based; these keep the services readable.

import {
  Metadata,
  type CallOptions,
  type ClientUnaryCall,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { toServiceError } from './errors';
import type { Logger } from './logger';

/** Adapts `async (request, call) => response` to grpc-js's unary handler, mapping errors to statuses. */
export function unary<Req, Res>(
  logger: Logger,
  method: string,
  handler: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    // Promise.resolve().then so a handler that throws synchronously is mapped like a rejection.
    Promise.resolve()
      .then(() => handler(call.request, call))
      .then(
      (res) => callback(null, res),
      (err: unknown) => {
        const se = toServiceError(err);
        logger.warn({ method, code: se.code, err: se.details }, 'request failed');
        callback(se as ServiceError, null);
      },
    );
  };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a generated client's unary method and returns a promise; `deadlineMs` bounds the call. */
export function call<Req, Res>(method: UnaryMethod<Req, Res>, self: object, request: Req, deadlineMs = 30_000): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method.call(self, request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
