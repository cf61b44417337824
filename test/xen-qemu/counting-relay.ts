// A TCP relay on the outer machine that the migration traffic between the two nested hosts passes
// through: the source connects to it at 10.0.2.2 (QEMU user networking), it connects on to the
// target's forwarded port. It counts the bytes in each direction ("bytes on the wire" is the
// sender-to-receiver payload) and can keep a copy of what the receiver was sent, which is exactly
// the stream the receiver got, for Xen's verifier.

import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';

export interface RelayCounts {
  /** Sender to receiver. */
  forwardBytes: number;
  /** Receiver to sender (handshake messages, acknowledgements). */
  backwardBytes: number;
  connections: number;
}

export class CountingRelay {
  private readonly counts: RelayCounts = { forwardBytes: 0, backwardBytes: 0, connections: 0 };
  private readonly sockets = new Set<Socket>();
  private capture: WriteStream | undefined;
  private captureDone: Promise<void> = Promise.resolve();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
    captureFile: string | undefined,
  ) {
    if (captureFile) {
      const capture = createWriteStream(captureFile);
      this.capture = capture;
      this.captureDone = new Promise((resolve, reject) => {
        capture.once('close', () => resolve());
        capture.once('error', reject);
      });
    }
    server.on('connection', (client) => this.relay(client));
  }

  /**
   * Listens on loopback `port` (0: any free one); `captureFile` receives the sender-to-receiver
   * bytes of every connection, in order.
   */
  static listen(target: { host: string; port: number }, captureFile?: string, port = 0): Promise<CountingRelay> {
    // Half-open: a sender that has finished may still wait for the receiver's last words.
    const server = createServer({ noDelay: true, allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve(new CountingRelay(server, (server.address() as { port: number }).port, target, captureFile));
      });
    });
  }

  get totals(): RelayCounts {
    return { ...this.counts };
  }

  private relay(client: Socket): void {
    this.counts.connections++;
    const upstream = new Socket({ allowHalfOpen: true });
    upstream.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('close', () => this.sockets.delete(client));
    upstream.once('close', () => this.sockets.delete(upstream));
    client.once('error', drop);
    upstream.once('error', drop);
    client.pause();
    upstream.connect(this.target.port, this.target.host, () => {
      client.on('data', (chunk: Buffer) => {
        this.counts.forwardBytes += chunk.length;
        this.capture?.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        this.counts.backwardBytes += chunk.length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  /** Stops listening, ends open connections and flushes the capture. */
  async close(): Promise<RelayCounts> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.capture?.end();
    await this.captureDone;
    return this.totals;
  }
}
