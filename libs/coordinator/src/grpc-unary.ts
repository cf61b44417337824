// Promise-based unary calls to the per-host services with a deadline and, for the long ones
// (streaming a round, compacting a guest), an AbortSignal that cancels the call: a cancel then
// takes effect within the round instead of after it.

import { Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface UnaryOptions {
  deadlineMs: number;
  signal?: AbortSignal;
}

export function unaryCall<Req, Res>(method: UnaryMethod<Req, Res>, self: object, request: Req, opts: UnaryOptions): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    const onAbort = () => call.cancel();
    const call = method.call(self, request, new Metadata(), { deadline: Date.now() + opts.deadlineMs }, (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(res);
    });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
