// Where the sender gets a round's send set: the local memory tracker (TakeSendSet over gRPC, at
// FERRY_MEMORY_TRACKER). Dirty bitmaps never leave the host. For the stop-and-copy round the
// sender also asks the tracker to prepare it (SendRound prepare_final), in the same call that
// takes the send set: the coordinator makes one call for the round, and so does the sender.

import { credentials } from '@grpc/grpc-js';
import { MemoryTrackerClient, type PrepareRoundResponse, type TakeSendSetResponse } from '@ferry/proto';
import { GRPC_MESSAGE_LIMITS, call, failedPrecondition, type FerryError } from '@ferry/runtime';
import { internal } from './errors';

export interface TakenSendSet {
  /** One bit per pfn, DirtyBitmap order. */
  bitmap: Uint8Array;
  pageCount: number;
  maxPages: number;
  domid: number;
  final: boolean;
  /** xen-legacy's to_skip: PEEK before each batch and skip pages dirtied again in this round. */
  skipRedirtiedPages: boolean;
}

export interface PreparedFinalRound {
  /** The tracker's counts for the round, as it answered them (without the send set). */
  prepared: PrepareRoundResponse;
  set: TakenSendSet;
}

export interface SendSetSource {
  take(migrationId: string, round: number): Promise<TakenSendSet>;
  /** PrepareRound of the stop-and-copy round (the FINAL CLEAN of the suspended domain) with its send set taken. */
  prepareFinal(fence: { migrationId: string; epoch: bigint }, round: number): Promise<PreparedFinalRound>;
  close(): void;
}

export class GrpcSendSetSource implements SendSetSource {
  private readonly client: MemoryTrackerClient;

  constructor(
    readonly address: string,
    private readonly deadlineMs = 30_000,
  ) {
    this.client = new MemoryTrackerClient(address, credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
  }

  async take(migrationId: string, round: number): Promise<TakenSendSet> {
    return takenSendSet(await call(this.client.takeSendSet, this.client, { migrationId, round }, this.deadlineMs));
  }

  async prepareFinal(fence: { migrationId: string; epoch: bigint }, round: number): Promise<PreparedFinalRound> {
    const { sendSet, ...prepared } = await call(this.client.prepareRound, this.client, { fence, round, final: true, takeSendSet: true }, this.deadlineMs);
    if (!sendSet) throw internal('BAD_SEND_SET', `the memory tracker prepared round ${round} without returning its send set`);
    return { prepared, set: takenSendSet(sendSet) };
  }

  close(): void {
    this.client.close();
  }
}

function takenSendSet(res: TakeSendSetResponse): TakenSendSet {
  const maxPages = Number(res.maxPages);
  if (res.bitmap.length !== Math.ceil(maxPages / 8)) {
    throw internal('BAD_SEND_SET', `the memory tracker sent a bitmap of ${res.bitmap.length} bytes for ${maxPages} pages`);
  }
  return {
    bitmap: new Uint8Array(res.bitmap.buffer, res.bitmap.byteOffset, res.bitmap.byteLength),
    pageCount: Number(res.pageCount),
    maxPages,
    domid: res.domid,
    final: res.final,
    skipRedirtiedPages: res.skipRedirtiedPages,
  };
}

/** For a streamer started without FERRY_MEMORY_TRACKER: it can receive, but not send rounds. */
export class NoSendSetSource implements SendSetSource {
  take(): Promise<TakenSendSet> {
    return Promise.reject<TakenSendSet>(noTracker());
  }

  prepareFinal(): Promise<PreparedFinalRound> {
    return Promise.reject<PreparedFinalRound>(noTracker());
  }

  close(): void {}
}

function noTracker(): FerryError {
  return failedPrecondition('NO_MEMORY_TRACKER', 'this page streamer has no memory tracker (FERRY_MEMORY_TRACKER is not set), so it cannot send rounds');
}
