// Error constructors @ferry/runtime has no helper for.

import { status } from '@grpc/grpc-js';
import { FerryError } from '@ferry/runtime';

export const aborted = (reason: string, message: string) => new FerryError(status.ABORTED, reason, message);
export const internal = (reason: string, message: string) => new FerryError(status.INTERNAL, reason, message);
