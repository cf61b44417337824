// ferry.v1.PageStreamerService over @ferry/streaming: proto messages in, library calls, proto out.
// The data port (raw TCP) is the library's; this file only serves the control API.

import type { HypervisorDriver } from '@ferry/hypervisor';
import {
  DigestAlgorithm,
  PageStreamerService,
  PayloadCompression,
  type Fence as FenceMessage,
  type PageStreamerServer,
  type ReceiveStatus,
} from '@ferry/proto';
import { invalidArgument, startGrpcServer, unary, type Logger } from '@ferry/runtime';
import { PageStreamer, serveExportDomain, type Fence, type ReceiveStatusView, type SendSetSource } from '@ferry/streaming';
import { PageStreamerMetrics, observedPageStreamer } from './observability';

export function pageStreamerHandlers(streamer: PageStreamer, logger: Logger): PageStreamerServer {
  return {
    openReceiveSession: unary(logger, 'OpenReceiveSession', async (req) => {
      const opened = await streamer.openReceiveSession(fenceOf(req.fence), req.domid, req.token);
      return { dataEndpoint: opened.dataEndpoint, resumed: opened.resumed, status: statusMessage(opened.status) };
    }),
    sendRound: unary(logger, 'SendRound', async (req, call) => {
      if (![PayloadCompression.PAYLOAD_COMPRESSION_UNSPECIFIED, PayloadCompression.PAYLOAD_COMPRESSION_NONE, PayloadCompression.PAYLOAD_COMPRESSION_ZLIB].includes(req.compression)) {
        throw invalidArgument('BAD_COMPRESSION', `unknown compression ${req.compression}`);
      }
      const s = await streamer.sendRound({
        fence: fenceOf(req.fence),
        round: req.round,
        domid: req.domid,
        peerEndpoint: req.peerEndpoint,
        token: req.token,
        bandwidthBps: Number(req.bandwidthBps),
        compression: req.compression,
        sendZeroPages: req.sendZeroPages,
        includeState: req.includeState,
        prepareFinal: req.prepareFinal,
      }, cancellation(call));
      return {
        round: s.round,
        pagesSent: BigInt(s.pagesSent),
        zeroPages: BigInt(s.zeroPages),
        absentPages: BigInt(s.absentPages),
        dataBytes: BigInt(s.dataBytes),
        wireBytes: BigInt(s.wireBytes),
        batches: BigInt(s.batches),
        elapsedMs: BigInt(s.elapsedMs),
        throughputBps: BigInt(s.throughputBps),
        skippedPages: BigInt(s.skippedPages),
        stateBytes: BigInt(s.stateBytes),
        prepared: s.prepared,
      };
    }),
    sendState: unary(logger, 'SendState', async (req, call) => {
      const s = await streamer.sendState({ fence: fenceOf(req.fence), domid: req.domid, peerEndpoint: req.peerEndpoint, token: req.token }, cancellation(call));
      return { stateBytes: BigInt(s.stateBytes), elapsedMs: BigInt(s.elapsedMs) };
    }),
    getReceiveStatus: unary(logger, 'GetReceiveStatus', async (req) => ({ status: statusMessage(streamer.getReceiveStatus(req.migrationId)) })),
    closeSession: unary(logger, 'CloseSession', async (req) => {
      const closed = streamer.closeSession(fenceOf(req.fence));
      return { closed: closed.closed, status: closed.status ? statusMessage(closed.status) : undefined };
    }),
    memoryDigest: unary(logger, 'MemoryDigest', async (req) => {
      if (req.algorithm !== DigestAlgorithm.DIGEST_ALGORITHM_UNSPECIFIED && req.algorithm !== DigestAlgorithm.DIGEST_ALGORITHM_SHA256) {
        throw invalidArgument('BAD_DIGEST_ALGORITHM', `unknown digest algorithm ${req.algorithm}`);
      }
      const d = await streamer.memoryDigest(req.domid);
      return { digest: d.digest, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256, pageCount: BigInt(d.pageCount), elapsedMs: BigInt(d.elapsedMs) };
    }),
    exportDomain: (call) => void serveExportDomain(streamer, logger, call),
  };
}

export interface PageStreamerServerHandle {
  address: string;
  dataEndpoint: string;
  streamer: PageStreamer;
  /** Stops serving, ends every session and connection (the driver stays open). */
  stop(): Promise<void>;
}

export async function startPageStreamerServer(opts: {
  address: string;
  dataListen: string;
  hostName: string;
  driver: HypervisorDriver;
  sendSets: SendSetSource;
  logger: Logger;
  metrics?: PageStreamerMetrics;
}): Promise<PageStreamerServerHandle> {
  const streamer = await PageStreamer.start({
    driver: opts.driver,
    sendSets: opts.sendSets,
    dataListen: opts.dataListen,
    hostName: opts.hostName,
    logger: opts.logger,
  });
  try {
    const metrics = opts.metrics ?? new PageStreamerMetrics();
    metrics.observeReceiver(streamer.received);
    const server = await startGrpcServer({
      address: opts.address,
      logger: opts.logger,
      services: [{ name: 'ferry.v1.PageStreamerService', definition: PageStreamerService, implementation: observedPageStreamer(pageStreamerHandlers(streamer, opts.logger), metrics) }],
    });
    return {
      address: server.address,
      dataEndpoint: streamer.dataEndpoint,
      streamer,
      stop: async () => {
        await streamer.close();
        await server.shutdown();
      },
    };
  } catch (err) {
    await streamer.close();
    throw err;
  }
}

/** Aborts when the client cancels the call or its deadline passes: no point streaming on for nobody. */
function cancellation(call: { on(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort());
  return controller.signal;
}

function fenceOf(fence: FenceMessage | undefined): Fence {
  if (!fence) throw invalidArgument('FENCE_REQUIRED', 'fence is required');
  return { migrationId: fence.migrationId, epoch: fence.epoch };
}

function statusMessage(s: ReceiveStatusView): ReceiveStatus {
  return {
    migrationId: s.migrationId,
    domid: s.domid,
    epoch: s.epoch,
    connected: s.connected,
    pagesReceived: BigInt(s.pagesReceived),
    pagesWritten: BigInt(s.pagesWritten),
    zeroPages: BigInt(s.zeroPages),
    batches: BigInt(s.batches),
    wireBytes: BigInt(s.wireBytes),
    rejectedBatches: BigInt(s.rejectedBatches),
    rejections: s.rejections.map((r) => ({ sequence: BigInt(r.sequence), round: r.round, reason: r.reason, message: r.message })),
    lastRoundComplete: s.lastRoundComplete ?? undefined,
    stateReceived: s.stateReceived,
    connections: s.connections,
  };
}
