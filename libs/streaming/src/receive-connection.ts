// The receiver's end of one data connection: verify the hello (session, token, epoch, version),
// then take batches one at a time: check the header, read the payload, check the checksum, write
// the pages, acknowledge END_OF_ROUND / VCPU_STATE batches once written. Reading stops while a
// batch is being written, so a slow domain write pushes back on the sender through TCP.
//
// A refused hello or batch is recorded in the session and answered with a refusal ack; then the
// connection is finished: nothing of the refused batch or anything after it is written. The
// receiver half-closes and drains until the sender hangs up, so that the refusal is not lost to
// a TCP reset. A sender that disappears leaves the session as it was, ready for a retry.
//
// Each round received is a "write round N" span (and the state a "load vCPU state" span), a child
// of the sender's span named by the hello's traceparent: the receiving side of the migration's
// trace. What every connection received is added to the streamer's ReceivedTotals (metrics).

import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { SpanKind, SpanStatusCode, context, trace, type Context, type Span } from '@opentelemetry/api';
import { HypervisorError, type HypervisorDriver } from '@ferry/hypervisor';
import { BatchRejectReason, PageBatchFlag, PageStreamAck, PageStreamHello } from '@ferry/proto';
import type { Logger } from '@ferry/runtime';
import { checkBatchHeader, checkPayload, rawPageCount, type BatchProblem } from './batch-checks';
import { PageWriter, PayloadError } from './page-writer';
import type { ReceiveSession, SessionConnection } from './receive-session';
import { batchLabel, rejectReasonName } from './rejections';
import { contextOfTraceparent, tracer } from './trace-context';
import { decodeBatchHeader, MalformedHeader, type BatchHeader } from './wire/batch-header';
import { frame, MAX_CONTROL_FRAME_BYTES, MAX_HEADER_FRAME_BYTES, MAX_PAYLOAD_BYTES, PROTOCOL_VERSION } from './wire/frames';
import { FrameTooLarge, type StreamReader } from './wire/stream-reader';

export interface SessionDirectory {
  find(migrationId: string): ReceiveSession | undefined;
}

export interface ReceiverOptions {
  /** A connection on which nothing arrives for this long is closed (the session stays). */
  idleTimeoutMs: number;
  /** After a refusal, how long to wait for the sender to hang up before cutting it off. */
  lingerMs: number;
}

export const DEFAULT_RECEIVER_OPTIONS: ReceiverOptions = { idleTimeoutMs: 120_000, lingerMs: 10_000 };

/** What the connections of one streamer received since it started (only ever grows). */
export interface ReceivedTotals {
  /** Pages received in batches (RAW, ZERO and ABSENT entries). */
  pages: number;
  /** Bytes read from data connections, hellos and headers included. */
  wireBytes: number;
  /** Rounds received completely (END_OF_ROUND written and acknowledged). */
  rounds: number;
}

/** The span of the round being received, with the session's counters when it began. */
interface RoundSpan {
  round: number;
  span: Span;
  pagesAtStart: number;
  writtenAtStart: number;
  zeroAtStart: number;
  batchesAtStart: number;
  bytesAtStart: number;
}

const { END_OF_ROUND, VCPU_STATE, END_OF_STREAM } = {
  END_OF_ROUND: PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND,
  VCPU_STATE: PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE,
  END_OF_STREAM: PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM,
};

export class ReceiveConnection implements SessionConnection {
  private session: ReceiveSession | null = null;
  private dropped = false;
  private finished = false;
  private counted = 0;
  /** The sequence the next batch must carry (1 after the hello). */
  private nextSequence = 0;
  private readonly peer: string;
  /** The sender's trace context (from the hello). */
  private traceContext: Context = contextOfTraceparent('');
  private roundSpan: RoundSpan | null = null;

  constructor(
    private readonly socket: Socket,
    /** The socket's bytes (StreamReader.adopting). */
    private readonly reader: StreamReader,
    private readonly sessions: SessionDirectory,
    private readonly driver: HypervisorDriver,
    private readonly logger: Logger,
    private readonly opts: ReceiverOptions,
    private readonly totals: ReceivedTotals = { pages: 0, wireBytes: 0, rounds: 0 },
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs, () => this.drop(`nothing arrived for ${opts.idleTimeoutMs} ms`));
  }

  drop(why: string): void {
    if (this.dropped) return;
    this.dropped = true;
    this.log('info', { migration_id: this.session?.migrationId, peer: this.peer, why }, 'data connection dropped');
    this.socket.destroy();
  }

  async run(): Promise<void> {
    try {
      const session = await this.handshake();
      if (session) await this.receiveBatches(session);
    } catch (err) {
      if (err instanceof FrameTooLarge) {
        this.refuse(this.nextSequence, 0, { reason: BatchRejectReason.BATCH_REJECT_REASON_MALFORMED, message: err.message });
      } else if (!this.dropped) {
        // The sender went away mid-stream; the session keeps what was written.
        this.log('info', { migration_id: this.session?.migrationId, peer: this.peer, err: (err as Error).message }, 'data connection lost');
      }
    } finally {
      this.account();
      this.endRoundSpan('the data connection ended before the round did');
      this.session?.detach(this);
      if (!this.finished) this.socket.destroy();
    }
  }

  private async handshake(): Promise<ReceiveSession | null> {
    const scratch = Buffer.allocUnsafe(MAX_CONTROL_FRAME_BYTES);
    const bytes = await this.reader.readFrame(scratch, MAX_CONTROL_FRAME_BYTES);
    if (bytes === null) return null;
    let hello: PageStreamHello;
    try {
      hello = PageStreamHello.decode(bytes);
    } catch (err) {
      this.refuse(0, 0, { reason: BatchRejectReason.BATCH_REJECT_REASON_MALFORMED, message: `undecodable hello: ${(err as Error).message}` });
      return null;
    }
    this.traceContext = contextOfTraceparent(hello.traceparent);
    const session = this.sessions.find(hello.migrationId);
    if (!session || session.isClosed) {
      this.refuse(0, 0, { reason: BatchRejectReason.BATCH_REJECT_REASON_UNKNOWN_SESSION, message: `no receive session for migration "${hello.migrationId}"` });
      return null;
    }
    this.session = session;
    const problem = helloProblem(hello, session);
    if (problem) {
      this.refuse(0, 0, problem);
      return null;
    }
    session.attach(this);
    this.account();
    this.ack(0, 0, true);
    this.log('info', { migration_id: session.migrationId, sender: hello.senderHost, peer: this.peer, epoch: String(hello.epoch) }, 'sender connected');
    return session;
  }

  private async receiveBatches(session: ReceiveSession): Promise<void> {
    const scratch = Buffer.allocUnsafe(MAX_HEADER_FRAME_BYTES);
    const payloadBuffer = Buffer.allocUnsafeSlow(MAX_PAYLOAD_BYTES);
    const seen = new Uint8Array(Math.ceil(session.maxPages / 8));
    const writer = new PageWriter(this.driver, session.domid);
    for (let expected = 1; ; expected++) {
      this.nextSequence = expected;
      const bytes = await this.reader.readFrame(scratch, MAX_HEADER_FRAME_BYTES);
      if (bytes === null || this.dropped) return;
      let h: BatchHeader;
      try {
        h = decodeBatchHeader(scratch, 0, bytes.length);
      } catch (err) {
        if (!(err instanceof MalformedHeader)) throw err;
        return this.refuse(expected, 0, { reason: BatchRejectReason.BATCH_REJECT_REASON_MALFORMED, message: `undecodable header: ${err.message}` });
      }
      const headerProblem = checkBatchHeader(h, { migrationId: session.migrationId, expectedSequence: expected, maxPages: session.maxPages }, seen);
      if (headerProblem) return this.refuse(h.sequence, h.round, headerProblem);
      // The checksum is a view into `scratch`; keep it before anything else is read.
      h.checksum = Buffer.from(h.checksum);
      const payload = payloadBuffer.subarray(0, h.payloadLength);
      if (h.payloadLength > 0 && !(await this.reader.readInto(payload, h.payloadLength))) return;
      this.account();
      if (this.dropped) return;
      const payloadProblem = checkPayload(h, payload);
      if (payloadProblem) return this.refuse(h.sequence, h.round, payloadProblem);
      // A connection carries many rounds: each brings the sender's trace context along.
      if (h.traceparent) this.traceContext = contextOfTraceparent(h.traceparent);

      if ((h.flags & VCPU_STATE) !== 0) {
        const span = tracer.startSpan(
          'load vCPU state',
          { kind: SpanKind.SERVER, attributes: { 'ferry.migration_id': session.migrationId, 'ferry.domid': session.domid, 'ferry.state_bytes': payload.length } },
          this.traceContext,
        );
        try {
          await this.driver.setVcpuContext(session.domid, Buffer.from(payload));
        } catch (err) {
          const problem = writeFailed(err, 'loading the vCPU state');
          span.setStatus({ code: SpanStatusCode.ERROR, message: problem.message });
          span.end();
          return this.refuse(h.sequence, h.round, problem);
        }
        span.end();
        session.stateReceived = true;
        this.ack(h.sequence, h.round);
      } else {
        this.roundSpanFor(session, h.round);
        let raw: Buffer;
        try {
          raw = await writer.rawBytes(h, payload, rawPageCount(h));
        } catch (err) {
          if (!(err instanceof PayloadError)) throw err;
          return this.refuse(h.sequence, h.round, { reason: BatchRejectReason.BATCH_REJECT_REASON_MALFORMED, message: err.message });
        }
        if (this.dropped) return;
        try {
          const written = await writer.write(h, raw);
          session.pagesWritten += written.written;
          session.zeroPages += written.zero;
        } catch (err) {
          return this.refuse(h.sequence, h.round, writeFailed(err, 'writing the pages'));
        }
        session.pagesReceived += h.pfnCount;
        this.totals.pages += h.pfnCount;
        session.batches++;
        if ((h.flags & END_OF_ROUND) !== 0) {
          session.roundComplete(h.round);
          this.totals.rounds++;
          this.ack(h.sequence, h.round);
          const span = this.roundSpan?.span;
          context.with(span ? trace.setSpan(this.traceContext, span) : context.active(), () =>
            this.logger.info({ migration_id: session.migrationId, round: h.round, pagesWritten: session.pagesWritten }, 'round received'),
          );
          this.endRoundSpan();
        }
      }
      if ((h.flags & END_OF_STREAM) !== 0) {
        this.finish();
        return;
      }
    }
  }

  private ack(sequence: number, round: number, hello = false): void {
    const session = this.session!;
    const ack = PageStreamAck.encode({
      sequence: BigInt(sequence),
      round,
      rejection: BatchRejectReason.BATCH_REJECT_REASON_UNSPECIFIED,
      message: '',
      pagesWritten: BigInt(session.pagesWritten),
      lastRoundComplete: hello && session.lastRoundComplete !== null ? session.lastRoundComplete : undefined,
    }).finish();
    this.socket.write(frame(ack));
  }

  /** Logs inside the sender's trace context: the line carries its trace_id. */
  private log(level: 'info' | 'warn', fields: object, msg: string): void {
    context.with(this.traceContext, () => this.logger[level](fields, msg));
  }

  /** The span of round `round`, started with its first batch. */
  private roundSpanFor(session: ReceiveSession, round: number): void {
    if (this.roundSpan?.round === round) return;
    this.endRoundSpan(`round ${round} began before round ${this.roundSpan?.round} ended`);
    const span = tracer.startSpan(
      `write round ${round}`,
      { kind: SpanKind.SERVER, attributes: { 'ferry.migration_id': session.migrationId, 'ferry.round': round, 'ferry.domid': session.domid } },
      this.traceContext,
    );
    this.roundSpan = {
      round,
      span,
      pagesAtStart: session.pagesReceived,
      writtenAtStart: session.pagesWritten,
      zeroAtStart: session.zeroPages,
      batchesAtStart: session.batches,
      bytesAtStart: session.wireBytes,
    };
  }

  /** Ends the open round span with the round's figures; `failure` marks it failed. */
  private endRoundSpan(failure?: string): void {
    const r = this.roundSpan;
    const session = this.session;
    if (!r) return;
    this.roundSpan = null;
    if (session) {
      r.span.setAttributes({
        'ferry.pages_received': session.pagesReceived - r.pagesAtStart,
        'ferry.pages_written': session.pagesWritten - r.writtenAtStart,
        'ferry.zero_pages': session.zeroPages - r.zeroAtStart,
        'ferry.batches': session.batches - r.batchesAtStart,
        'ferry.wire_bytes': session.wireBytes - r.bytesAtStart,
      });
    }
    if (failure) r.span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
    r.span.end();
  }

  /** Records the refusal, tells the sender, and finishes the connection. */
  private refuse(sequence: number, round: number, problem: BatchProblem): void {
    const session = this.session;
    this.endRoundSpan(`refused ${batchLabel(sequence, round)}: ${problem.message}`);
    session?.recordRejection({ sequence, round, reason: problem.reason, message: problem.message });
    this.log(
      'warn',
      { migration_id: session?.migrationId, peer: this.peer, reason: rejectReasonName(problem.reason), err: problem.message },
      `refused ${batchLabel(sequence, round)}`,
    );
    const ack = PageStreamAck.encode({
      sequence: BigInt(sequence),
      round,
      rejection: problem.reason,
      message: problem.message,
      pagesWritten: BigInt(session?.pagesWritten ?? 0),
    }).finish();
    this.socket.write(frame(ack));
    this.reader.discard();
    this.finish();
  }

  /** Half-close and let the sender hang up; cut it off if it lingers. */
  private finish(): void {
    this.finished = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), this.opts.lingerMs).unref();
  }

  private account(): void {
    if (!this.session) return;
    const read = this.reader.bytesRead - this.counted;
    this.session.wireBytes += read;
    this.totals.wireBytes += read;
    this.counted = this.reader.bytesRead;
  }
}

function helloProblem(hello: PageStreamHello, session: ReceiveSession): BatchProblem | null {
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return {
      reason: BatchRejectReason.BATCH_REJECT_REASON_UNSUPPORTED_VERSION,
      message: `protocol version ${hello.protocolVersion} is not supported (this receiver speaks ${PROTOCOL_VERSION})`,
    };
  }
  if (!tokensEqual(hello.token, session.token)) {
    return { reason: BatchRejectReason.BATCH_REJECT_REASON_BAD_TOKEN, message: 'the session token does not match' };
  }
  if (hello.epoch < session.epoch) {
    return {
      reason: BatchRejectReason.BATCH_REJECT_REASON_STALE_EPOCH,
      message: `epoch ${hello.epoch} is older than the session's epoch ${session.epoch}`,
    };
  }
  return null;
}

function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function writeFailed(err: unknown, what: string): BatchProblem {
  const detail = err instanceof HypervisorError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  return { reason: BatchRejectReason.BATCH_REJECT_REASON_WRITE_FAILED, message: `${what} failed: ${detail}` };
}
