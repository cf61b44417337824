// Where the sender gets a round's send set: the local memory tracker (TakeSendSet over gRPC, at
// FERRY_MEMORY_TRACKER). Dirty bitmaps never leave the host. For the stop-and-copy round the
// sender also asks the tracker to prepare it (SendRound prepare_final), so the coordinator makes
// one call for the round, not two.

import { credentials } from '@grpc/grpc-js';
import { MemoryTrackerClient, type PrepareRoundResponse } from '@ferry/proto';
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

export interface SendSetSource {
  take(migrationId: string, round: number): Promise<TakenSendSet>;
  /** PrepareRound of the stop-and-copy round (the FINAL CLEAN of the suspended domain), as the tracker answered it. */
  prepareFinal(fence: { migrationId: string; epoch: bigint }, round: number): Promise<PrepareRoundResponse>;
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
    const res = await call(this.client.takeSendSet, this.client, { migrationId, round }, this.deadlineMs);
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

  prepareFinal(fence: { migrationId: string; epoch: bigint }, round: number): Promise<PrepareRoundResponse> {
    return call(this.client.prepareRound, this.client, { fence, round, final: true }, this.deadlineMs);
  }

  close(): void {
    this.client.close();
  }
}

/** For a streamer started without FERRY_MEMORY_TRACKER: it can receive, but not send rounds. */
export class NoSendSetSource implements SendSetSource {
  take(): Promise<TakenSendSet> {
    return Promise.reject<TakenSendSet>(noTracker());
  }

  prepareFinal(): Promise<PrepareRoundResponse> {
    return Promise.reject<PrepareRoundResponse>(noTracker());
  }

  close(): void {}
}

function noTracker(): FerryError {
  return failedPrecondition('NO_MEMORY_TRACKER', 'this page streamer has no memory tracker (FERRY_MEMORY_TRACKER is not set), so it cannot send rounds');
}
