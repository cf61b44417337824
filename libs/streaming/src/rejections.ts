// What a receiver's refusal means to the caller of SendRound / SendState: a gRPC status with the
// refusal's reason, and a message naming the batch ("batch 12 of round 3: checksum mismatch").

import { status } from '@grpc/grpc-js';
import { BatchRejectReason } from '@ferry/proto';
import { FerryError } from '@ferry/runtime';

const STATUS_OF: Partial<Record<BatchRejectReason, status>> = {
  [BatchRejectReason.BATCH_REJECT_REASON_UNKNOWN_SESSION]: status.NOT_FOUND,
  [BatchRejectReason.BATCH_REJECT_REASON_BAD_TOKEN]: status.ABORTED,
  [BatchRejectReason.BATCH_REJECT_REASON_STALE_EPOCH]: status.ABORTED,
  [BatchRejectReason.BATCH_REJECT_REASON_UNSUPPORTED_VERSION]: status.ABORTED,
  [BatchRejectReason.BATCH_REJECT_REASON_CHECKSUM_MISMATCH]: status.DATA_LOSS,
  [BatchRejectReason.BATCH_REJECT_REASON_MALFORMED]: status.DATA_LOSS,
  [BatchRejectReason.BATCH_REJECT_REASON_PFN_OUT_OF_RANGE]: status.FAILED_PRECONDITION,
  [BatchRejectReason.BATCH_REJECT_REASON_WRITE_FAILED]: status.INTERNAL,
};

/** "CHECKSUM_MISMATCH" for BATCH_REJECT_REASON_CHECKSUM_MISMATCH. */
export function rejectReasonName(reason: BatchRejectReason): string {
  const name = BatchRejectReason[reason] as string | undefined;
  return name ? name.replace(/^BATCH_REJECT_REASON_/, '') : `REASON_${reason}`;
}

/** The batch a rejection is about, for messages: "the handshake" or "batch 12 of round 3". */
export function batchLabel(sequence: number, round: number): string {
  return sequence === 0 ? 'the handshake' : `batch ${sequence} of round ${round}`;
}

export function rejectionError(reason: BatchRejectReason, sequence: number, round: number, message: string, peer: string): FerryError {
  let code = STATUS_OF[reason] ?? status.INTERNAL;
  // A write that failed for lack of host memory is the receiving host's capacity.
  if (reason === BatchRejectReason.BATCH_REJECT_REASON_WRITE_FAILED && /ENOMEM/.test(message)) code = status.RESOURCE_EXHAUSTED;
  return new FerryError(code, rejectReasonName(reason), `${batchLabel(sequence, round)}: ${message} (refused by the receiver at ${peer})`);
}
