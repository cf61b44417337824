// The source side of one round (SendRound): take the round's send set from the local memory
// tracker and stream it over the migration's data link (data-link.ts: one connection kept from
// round to round) in batches of at most 1024 pages, under the bandwidth cap and the socket's
// backpressure; the last batch carries END_OF_ROUND, and the round is done when the receiver
// acknowledges it (every page written). With include_state (the stop-and-copy round) the
// suspended domain's state follows the pages on the same connection and ends the stream.
// With xen-legacy's to_skip, the dirty bitmap is PEEKed before each batch and pages dirtied again
// since the round's CLEAN are left for the next round.

import { MAX_BATCH_PAGES, type HypervisorDriver } from '@ferry/hypervisor';
import { ChecksumAlgorithm, PageBatchFlag, PayloadCompression, type PrepareRoundResponse } from '@ferry/proto';
import { failedPrecondition, type Logger } from '@ferry/runtime';
import { BatchEncoder, type EncodedBatch } from './batch-encoder';
import type { DataLink, LinkLease } from './data-link';
import { internal } from './errors';
import type { PeerConnection } from './peer-connection';
import { SendSetCursor } from './send-set-cursor';
import type { SendSetSource } from './send-set-source';
import { TokenBucket } from './token-bucket';
import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import { activeTraceparent, tracer } from './trace-context';

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
  /** The stop-and-copy round: send the suspended domain's state after the pages and end the stream. */
  includeState?: boolean;
  /** The stop-and-copy round is not prepared yet: have the local memory tracker prepare it first. */
  prepareFinal?: boolean;
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
  /** With includeState: bytes of vCPU and device state sent after the pages. */
  stateBytes: number;
  /** With prepareFinal: the tracker's counts for the round. */
  prepared?: PrepareRoundResponse;
  /** The cap's accounting (absent when unlimited): bytes granted and time told to wait. */
  throttle?: { grantedBytes: number; throttledMs: number; burstBytes: number; bytesPerSecond: number };
}

export async function sendRound(deps: SenderDeps, req: SendRoundRequest, link: DataLink): Promise<SendRoundStats> {
  // The send set (prepared first for the final round) and the suspended domain's vCPU state are
  // fetched at the same time: in the downtime window that is one wait, not two.
  const fetchStarted = performance.now();
  const fetchSet = async () => {
    if (!req.prepareFinal) return { prepared: undefined, set: await deps.sendSets.take(req.migrationId, req.round) };
    return deps.sendSets.prepareFinal({ migrationId: req.migrationId, epoch: req.epoch }, req.round);
  };
  // EBUSY (FAILED_PRECONDITION) while the domain still runs: known before a page is sent.
  const readState = () => (req.includeState ? deps.driver.getVcpuContext(req.domid) : Promise.resolve(null));
  // The data link is leased meanwhile: a round that opens it (round 0, or after a failure)
  // connects and says hello while the tracker hands over the send set. A refused call gives up a
  // connection attempt still under way, and leaves an open connection open.
  const refused = new AbortController();
  let leaseSettled = false;
  const leasing = link.lease(deps, req, AbortSignal.any([req.signal, refused.signal])).finally(() => (leaseSettled = true));
  const fetching = Promise.allSettled([fetchSet(), readState()]).then(([fetched, stateRead]) => {
    if (fetched.status === 'rejected') throw fetched.reason;
    const { set } = fetched.value;
    if (set.domid !== req.domid) {
      throw failedPrecondition('DOMID_MISMATCH', `round ${req.round} of migration ${req.migrationId} tracks domain ${set.domid}, not ${req.domid}`);
    }
    if (stateRead.status === 'rejected') throw stateRead.reason;
    return { ...fetched.value, state: stateRead.value };
  });
  fetching.catch((err: unknown) => {
    if (!leaseSettled) refused.abort(err);
  });
  const [fetched, leased] = await Promise.allSettled([fetching, leasing]);
  if (fetched.status === 'rejected') {
    if (leased.status === 'fulfilled') leased.value.release();
    throw fetched.reason;
  }
  if (leased.status === 'rejected') throw leased.reason;
  const { prepared, set, state } = fetched.value;
  const lease = leased.value;
  // The round's time is the streaming's: a final round's preparation is the tracker's to report
  // (prepared.elapsedMs), taking a prepared send set counts as streaming.
  const started = req.prepareFinal ? performance.now() : fetchStarted;
  const encoder = new BatchEncoder(deps.driver, req.domid, req.migrationId, {
    compression: req.compression,
    checksum: req.checksum ?? ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
    sendZeroPages: req.sendZeroPages ?? false,
  });
  const bucket = req.bandwidthBps > 0 ? TokenBucket.forBitsPerSecond(req.bandwidthBps) : null;
  const conn = lease.conn;
  // A round that opened the connection pays for its hello.
  const wireAtStart = lease.opened ? 0 : conn.wireBytes;
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
    stateBytes: 0,
    prepared,
  };
  try {
    const cursor = new SendSetCursor(set.bitmap, set.maxPages);
    const traceparent = activeTraceparent();
    let endOfRound = 0;
    for (;;) {
      const skip = set.skipRedirtiedPages ? (await deps.driver.logDirtyPeek(req.domid)).bitmap : null;
      const pfns = cursor.next(MAX_BATCH_PAGES, skip);
      const last = cursor.done;
      if (pfns.length === 0 && !last) continue; // every page of this stretch was skipped
      const flags = last ? PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND : 0;
      const sequence = lease.nextSequence();
      const batch = await encoder.encode(req.round, sequence, pfns, flags, stats.batches === 0 ? traceparent : '');
      await writeBatch(conn, bucket, batch);
      stats.batches++;
      stats.pagesSent += batch.rawPages + batch.zeroPages;
      stats.zeroPages += batch.zeroPages;
      stats.absentPages += batch.absentPages;
      stats.dataBytes += batch.dataBytes;
      if (last) {
        endOfRound = sequence;
        break;
      }
    }
    stats.skippedPages = cursor.skipped;
    await (state ? sendStateAfterPages(lease, encoder, state, endOfRound, req.round) : expectAck(conn, endOfRound, `the end of round ${req.round}`));
    stats.stateBytes = state?.byteLength ?? 0;
    stats.wireBytes = conn.wireBytes - wireAtStart;
    lease.release(state !== null);
  } catch (err) {
    conn.fail(err instanceof Error ? err : new Error(String(err)));
    lease.release();
    throw err;
  }
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
  deps.logger.info({ migration_id: req.migrationId, ...stats, throttle: undefined, prepared: undefined }, 'round sent');
  return stats;
}

/** The state after the final round's pages, in a span of its own that the target's "load vCPU state" continues. */
async function sendStateAfterPages(lease: LinkLease, encoder: BatchEncoder, state: Uint8Array, endOfRound: number, round: number): Promise<void> {
  const span = tracer.startSpan('send vCPU state', { attributes: { 'ferry.state_bytes': state.byteLength } });
  try {
    await context.with(trace.setSpan(context.active(), span), async () => {
      const sequence = await writeStateBatch(lease, encoder, state);
      await expectAck(lease.conn, endOfRound, `the end of round ${round}`);
      await expectAck(lease.conn, sequence, 'the domain state');
    });
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** Writes the state as the stream's last batch (with the active trace context); returns its sequence. */
export async function writeStateBatch(lease: LinkLease, encoder: BatchEncoder, state: Uint8Array): Promise<number> {
  const sequence = lease.nextSequence();
  const flags = PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM;
  const batch = encoder.encodeState(sequence, flags, state, activeTraceparent());
  await lease.conn.write(batch.frame);
  if (batch.payload.length > 0) await lease.conn.write(batch.payload);
  return sequence;
}

/** The next ack must be for batch `sequence` (acks come for the hello, ends of rounds and the state). */
export async function expectAck(conn: PeerConnection, sequence: number, what: string): Promise<void> {
  const ack = await conn.nextAck();
  if (Number(ack.sequence) !== sequence) {
    throw internal('UNEXPECTED_ACK', `the receiver acknowledged batch ${ack.sequence}, expected ${what} (batch ${sequence})`);
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
