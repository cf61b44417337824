// The source side of one round (SendRound): take the round's send set from the local memory
// tracker, open a data connection to the receiver, and stream the set in batches of at most 1024
// pages, under the bandwidth cap and the socket's backpressure; the last batch carries
// END_OF_ROUND, and the round is done when the receiver acknowledges it (every page written).
// With xen-legacy's to_skip, the dirty bitmap is PEEKed before each batch and pages dirtied again
// since the round's CLEAN are left for the next round.

import { MAX_BATCH_PAGES, type HypervisorDriver } from '@ferry/hypervisor';
import { ChecksumAlgorithm, PageBatchFlag, PageStreamHello, PayloadCompression } from '@ferry/proto';
import { failedPrecondition, type Logger } from '@ferry/runtime';
import { BatchEncoder, type EncodedBatch } from './batch-encoder';
import { internal } from './errors';
import { PeerConnection } from './peer-connection';
import { SendSetCursor } from './send-set-cursor';
import type { SendSetSource } from './send-set-source';
import { TokenBucket } from './token-bucket';
import { activeTraceparent } from './trace-context';
import { frame, PROTOCOL_VERSION } from './wire/frames';

export interface SenderTimeouts {
  connectTimeoutMs: number;
  inactivityTimeoutMs: number;
}

export const DEFAULT_SENDER_TIMEOUTS: SenderTimeouts = { connectTimeoutMs: 10_000, inactivityTimeoutMs: 60_000 };

/** Throttled writes go out in slices of this size, so the cap holds at a fine grain. */
const THROTTLE_SLICE_BYTES = 64 * 1024;

export interface SenderDeps {
  driver: HypervisorDriver;
  sendSets: SendSetSource;
  /** This host's name, for the receiver's logs. */
  hostName: string;
  logger: Logger;
  timeouts: SenderTimeouts;
}

export interface SessionTarget {
  migrationId: string;
  epoch: bigint;
  peerEndpoint: string;
  token: string;
  /** Aborts the call (a newer call for the migration, CloseSession, shutdown). */
  signal: AbortSignal;
}

export interface SendRoundRequest extends SessionTarget {
  round: number;
  domid: number;
  /** Bits per second on the wire; 0 = unlimited. */
  bandwidthBps: number;
  compression: PayloadCompression;
  /** Send all-zero pages in full, as Xen's stream does (default: as ZERO entries). */
  sendZeroPages?: boolean;
  /** CRC-32 unless a test asks otherwise. */
  checksum?: ChecksumAlgorithm;
}

export interface SendRoundStats {
  round: number;
  /** RAW and ZERO pages delivered. */
  pagesSent: number;
  zeroPages: number;
  absentPages: number;
  skippedPages: number;
  dataBytes: number;
  wireBytes: number;
  batches: number;
  elapsedMs: number;
  throughputBps: number;
  /** The cap's accounting (absent when unlimited): bytes granted and time told to wait. */
  throttle?: { grantedBytes: number; throttledMs: number; burstBytes: number; bytesPerSecond: number };
}

export async function sendRound(deps: SenderDeps, req: SendRoundRequest): Promise<SendRoundStats> {
  const started = performance.now();
  const set = await deps.sendSets.take(req.migrationId, req.round);
  if (set.domid !== req.domid) {
    throw failedPrecondition('DOMID_MISMATCH', `round ${req.round} of migration ${req.migrationId} tracks domain ${set.domid}, not ${req.domid}`);
  }
  const encoder = new BatchEncoder(deps.driver, req.domid, req.migrationId, {
    compression: req.compression,
    checksum: req.checksum ?? ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
    sendZeroPages: req.sendZeroPages ?? false,
  });
  const bucket = req.bandwidthBps > 0 ? TokenBucket.forBitsPerSecond(req.bandwidthBps) : null;
  const conn = await openSession(deps, req);
  const stats: SendRoundStats = {
    round: req.round,
    pagesSent: 0,
    zeroPages: 0,
    absentPages: 0,
    skippedPages: 0,
    dataBytes: 0,
    wireBytes: 0,
    batches: 0,
    elapsedMs: 0,
    throughputBps: 0,
  };
  try {
    const cursor = new SendSetCursor(set.bitmap, set.maxPages);
    let sequence = 0;
    for (;;) {
      const skip = set.skipRedirtiedPages ? (await deps.driver.logDirtyPeek(req.domid)).bitmap : null;
      const pfns = cursor.next(MAX_BATCH_PAGES, skip);
      const last = cursor.done;
      if (pfns.length === 0 && !last) continue; // every page of this stretch was skipped
      const flags = last ? PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM : 0;
      const batch = await encoder.encode(req.round, ++sequence, pfns, flags);
      await writeBatch(conn, bucket, batch);
      stats.batches++;
      stats.pagesSent += batch.rawPages + batch.zeroPages;
      stats.zeroPages += batch.zeroPages;
      stats.absentPages += batch.absentPages;
      stats.dataBytes += batch.dataBytes;
      if (last) break;
    }
    stats.skippedPages = cursor.skipped;
    const ack = await conn.nextAck();
    if (Number(ack.sequence) !== sequence) {
      throw internal('UNEXPECTED_ACK', `the receiver acknowledged batch ${ack.sequence}, expected the end of round ${req.round} (batch ${sequence})`);
    }
    conn.close();
  } catch (err) {
    conn.fail(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  stats.wireBytes = conn.wireBytes;
  stats.elapsedMs = Math.max(1, Math.round(performance.now() - started));
  stats.throughputBps = Math.round((stats.wireBytes * 8 * 1000) / stats.elapsedMs);
  if (bucket) {
    stats.throttle = {
      grantedBytes: bucket.grantedBytes,
      throttledMs: bucket.throttledMs,
      burstBytes: bucket.burstBytes,
      bytesPerSecond: bucket.bytesPerSecond,
    };
  }
  deps.logger.info({ migration_id: req.migrationId, ...stats, throttle: undefined }, 'round sent');
  return stats;
}

/** Connects, says hello, and waits for the receiver to accept the session. */
export async function openSession(deps: SenderDeps, target: SessionTarget): Promise<PeerConnection> {
  const conn = await PeerConnection.connect(target.peerEndpoint, { ...deps.timeouts, signal: target.signal });
  try {
    const hello = PageStreamHello.encode({
      protocolVersion: PROTOCOL_VERSION,
      migrationId: target.migrationId,
      epoch: target.epoch,
      token: target.token,
      senderHost: deps.hostName,
      traceparent: activeTraceparent(),
    }).finish();
    await conn.write(frame(hello));
    const ack = await conn.nextAck();
    if (ack.sequence !== 0n) throw internal('UNEXPECTED_ACK', `the receiver answered the hello with an ack for batch ${ack.sequence}`);
    return conn;
  } catch (err) {
    conn.fail(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}

/** Header frame, then payload; under a cap, each slice waits for its tokens first. */
async function writeBatch(conn: PeerConnection, bucket: TokenBucket | null, batch: EncodedBatch): Promise<void> {
  // On failure the payload buffer is not given back (the socket may still hold it); the pool
  // then allocates a fresh one.
  if (bucket) await bucket.take(batch.frame.length, conn.signal);
  await conn.write(batch.frame);
  const payload = batch.payload;
  if (payload.length === 0) {
    batch.release();
    return;
  }
  if (!bucket) {
    await conn.write(payload, batch.release);
    return;
  }
  for (let offset = 0; offset < payload.length; offset += THROTTLE_SLICE_BYTES) {
    const end = Math.min(payload.length, offset + THROTTLE_SLICE_BYTES);
    await bucket.take(end - offset, conn.signal);
    await conn.write(payload.subarray(offset, end), end === payload.length ? batch.release : undefined);
  }
}
