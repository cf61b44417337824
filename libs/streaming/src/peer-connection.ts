// The sender's end of a data connection: connect, write with socket backpressure, read the
// receiver's acks, and fail fast. Any failure (socket error, the receiver closing, a refusal ack,
// an inactivity timeout while waiting on the receiver) fails the connection once; every pending
// and later wait rejects with that error, and `signal` aborts so throttling sleeps end too.

import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { PageStreamAck } from '@ferry/proto';
import { unavailable } from '@ferry/runtime';
import { parseEndpoint } from './endpoint';
import { rejectionError } from './rejections';
import { MAX_CONTROL_FRAME_BYTES } from './wire/frames';
import { StreamReader } from './wire/stream-reader';

export interface PeerConnectionOptions {
  connectTimeoutMs: number;
  /** Fail when waiting on the receiver (drain, an ack) brings no activity for this long. */
  inactivityTimeoutMs: number;
}

/** How much the socket buffers before write() asks us to wait: two full batches. */
const WRITE_HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Unread acks buffered before the socket is paused (acks are a few dozen bytes each). */
const ACK_RING_BYTES = 64 * 1024;

export class PeerConnection {
  private readonly controller = new AbortController();
  private failure: Error | null = null;
  /** Resolves when the connection fails. */
  private readonly failed: Promise<void>;
  private resolveFailed!: () => void;
  private readonly acks: PageStreamAck[] = [];
  private ackWaiter: (() => void) | null = null;
  private closing = false;
  private lastActivity = performance.now();
  /** Waiting on the receiver (not throttling): the inactivity watchdog applies. */
  private waitingOnPeer = 0;
  private readonly watchdog: NodeJS.Timeout;
  /** Bytes written to the connection. */
  wireBytes = 0;

  private constructor(
    private readonly socket: Socket,
    readonly endpoint: string,
    private readonly opts: PeerConnectionOptions,
  ) {
    this.failed = new Promise<void>((resolve) => {
      this.resolveFailed = resolve;
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset or a broken pipe is the receiver going away, as much as an orderly close.
      const gone = err.code === 'ECONNRESET' || err.code === 'EPIPE';
      this.fail(unavailable(gone ? 'PEER_DISCONNECTED' : 'PEER_CONNECTION_FAILED', `data connection to ${endpoint} failed: ${err.message}`));
    });
    socket.on('close', () => {
      if (!this.closing) this.fail(unavailable('PEER_DISCONNECTED', `the receiver at ${endpoint} closed the data connection`));
    });
    this.watchdog = setInterval(() => this.checkActivity(), Math.min(1000, opts.inactivityTimeoutMs));
    this.watchdog.unref();
    // Acks are small and read as they come: a small ring will do.
    void this.readAcks(new StreamReader(socket, ACK_RING_BYTES));
  }

  static connect(endpoint: string, opts: PeerConnectionOptions): Promise<PeerConnection> {
    const { host, port } = parseEndpoint(endpoint);
    return new Promise((resolve, reject) => {
      // Node hands highWaterMark on to the socket's streams; @types/node does not list it here.
      const socket = connect({ host, port, highWaterMark: WRITE_HIGH_WATER_BYTES } as NetConnectOpts);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(unavailable('PEER_UNREACHABLE', `connecting to the receiver at ${endpoint} timed out after ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(unavailable('PEER_UNREACHABLE', `cannot connect to the receiver at ${endpoint}: ${err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new PeerConnection(socket, endpoint, opts));
      });
    });
  }

  /** Aborted when the connection fails: pass it to anything that waits while sending. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the connection failed (its socket is gone): it cannot carry another round. */
  get isFailed(): boolean {
    return this.failure !== null;
  }

  /**
   * Fails the connection when `signal` aborts (a superseding call, CloseSession, shutdown), until
   * the returned function is called.
   */
  watch(signal: AbortSignal): () => void {
    const onAbort = () => this.fail(asError(signal.reason));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  /**
   * Writes a chunk; `onFlushed` runs once the socket has handed it to the kernel (then a reused
   * buffer may be overwritten). Waits for 'drain' when the socket buffers enough already.
   */
  async write(chunk: Uint8Array, onFlushed?: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    this.wireBytes += chunk.byteLength;
    const more = this.socket.write(chunk, () => {
      this.lastActivity = performance.now();
      onFlushed?.();
    });
    if (!more) await this.waitOnPeer(new Promise<void>((resolve) => this.socket.once('drain', resolve)));
  }

  /** The next ack that is not a refusal (a refusal fails the connection instead). */
  async nextAck(): Promise<PageStreamAck> {
    for (;;) {
      if (this.failure) throw this.failure;
      const ack = this.acks.shift();
      if (ack) return ack;
      await this.waitOnPeer(
        new Promise<void>((resolve) => {
          this.ackWaiter = resolve;
        }),
      );
    }
  }

  /** Ends the connection after the last ack; later socket events are not failures. */
  close(): void {
    this.closing = true;
    clearInterval(this.watchdog);
    this.socket.end();
    // A receiver that does not finish its side promptly is cut off.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  /** Fails the connection (idempotent): pending waits reject with `err`. */
  fail(err: Error): void {
    if (this.failure || this.closing) return;
    this.failure = err;
    clearInterval(this.watchdog);
    this.controller.abort(err);
    this.resolveFailed();
    this.socket.destroy();
    this.wakeAckWaiter();
  }

  /** Races `wait` against the connection failing, with the inactivity watchdog armed. */
  private async waitOnPeer(wait: Promise<void>): Promise<void> {
    this.waitingOnPeer++;
    try {
      await Promise.race([wait, this.failed]);
    } finally {
      this.waitingOnPeer--;
    }
    if (this.failure) throw this.failure;
  }

  private checkActivity(): void {
    if (this.waitingOnPeer === 0) {
      this.lastActivity = performance.now();
      return;
    }
    const idle = performance.now() - this.lastActivity;
    if (idle > this.opts.inactivityTimeoutMs) {
      this.fail(unavailable('PEER_TIMEOUT', `the receiver at ${this.endpoint} made no progress for ${Math.round(idle)} ms`));
    }
  }

  private async readAcks(reader: StreamReader): Promise<void> {
    const scratch = Buffer.allocUnsafe(MAX_CONTROL_FRAME_BYTES);
    try {
      for (;;) {
        const bytes = await reader.readFrame(scratch, MAX_CONTROL_FRAME_BYTES);
        if (bytes === null) break;
        this.lastActivity = performance.now();
        const ack = PageStreamAck.decode(bytes);
        if (ack.rejection !== 0) {
          this.fail(rejectionError(ack.rejection, Number(ack.sequence), ack.round, ack.message, this.endpoint));
          return;
        }
        this.acks.push(ack);
        this.wakeAckWaiter();
      }
    } catch (err) {
      this.fail(unavailable('PEER_PROTOCOL_ERROR', `reading acks from ${this.endpoint} failed: ${(err as Error).message}`));
      return;
    }
    if (!this.closing) this.fail(unavailable('PEER_DISCONNECTED', `the receiver at ${this.endpoint} closed the data connection`));
  }

  private wakeAckWaiter(): void {
    const wake = this.ackWaiter;
    this.ackWaiter = null;
    wake?.();
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
