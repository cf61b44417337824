// The source's data connection of one migration, kept open from one round to the next.
// Connecting, the hello and its acknowledgement are several process hops; paid once per round
// they lengthen every round, and in the stop-and-copy round they are downtime. Batches are
// numbered per connection, so the link also hands out sequence numbers.
//
// A link that failed (the receiver went away, a call was aborted half-way through a round) is
// dropped, and the next round connects again: the receive session outlives its connections and
// page writes are idempotent, so a resent round is harmless.

import { PageStreamHello } from '@ferry/proto';
import { internal } from './errors';
import { PeerConnection } from './peer-connection';
import type { SenderTimeouts } from './round-sender';
import { activeTraceparent } from './trace-context';
import { frame, PROTOCOL_VERSION } from './wire/frames';

export interface LinkTarget {
  migrationId: string;
  epoch: bigint;
  peerEndpoint: string;
  token: string;
}

export interface LinkDeps {
  /** This host's name, for the receiver's logs. */
  hostName: string;
  timeouts: SenderTimeouts;
}

/** One call's use of the link: the connection, the call's sequence numbers, and the release. */
export interface LinkLease {
  conn: PeerConnection;
  /** True when this lease connected (and said hello) rather than reusing the open connection. */
  opened: boolean;
  /** The sequence number of the next batch on this connection. */
  nextSequence(): number;
  /** The call is over: keep the connection for the next round, or (`end`) close it. */
  release(end?: boolean): void;
}

export class DataLink {
  private conn: PeerConnection | null = null;
  private key = '';
  private sequence = 0;

  /**
   * The open connection to `target` (a new one when there is none, it failed, or the endpoint,
   * token or epoch changed). `signal` aborts this call: the connection fails with it, since a
   * round cut off half-way leaves the stream out of step.
   */
  async lease(deps: LinkDeps, target: LinkTarget, signal: AbortSignal): Promise<LinkLease> {
    if (signal.aborted) throw asError(signal.reason);
    const key = `${target.peerEndpoint}|${target.token}|${target.epoch}`;
    const opened = !this.conn || this.conn.isFailed || this.key !== key;
    if (opened) {
      this.close();
      this.conn = await openSession(deps, target, signal);
      this.key = key;
      this.sequence = 0;
    }
    const conn = this.conn!;
    const unwatch = conn.watch(signal);
    return {
      conn,
      opened,
      nextSequence: () => ++this.sequence,
      release: (end = false) => {
        unwatch();
        if (end || conn.isFailed) {
          if (this.conn === conn) this.forget();
          if (end) conn.close();
        }
      },
    };
  }

  /** Ends the connection (the session closed, the streamer shuts down). */
  close(): void {
    const conn = this.conn;
    this.forget();
    conn?.close();
  }

  private forget(): void {
    this.conn = null;
    this.key = '';
    this.sequence = 0;
  }
}

/** Connects, says hello, and waits for the receiver to accept the session; `signal` aborts that. */
export async function openSession(deps: LinkDeps, target: LinkTarget, signal?: AbortSignal): Promise<PeerConnection> {
  if (signal?.aborted) throw asError(signal.reason);
  const conn = await PeerConnection.connect(target.peerEndpoint, deps.timeouts);
  const unwatch = signal ? conn.watch(signal) : () => {};
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
    conn.fail(asError(err));
    throw err;
  } finally {
    unwatch();
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
