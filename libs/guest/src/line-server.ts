// The guest's network service: a line protocol over TCP on the NIC the platform gives it. Requests
// on a connection are answered in order. A request touches guest memory only after the vCPU's
// pause point and only while the guest runs; it is then handled synchronously, so a pause or a
// suspend never sees half a request. Connections do not survive a suspend (the host's sockets do
// not migrate): they are closed and clients reconnect to the address the guest publishes.

import type { Socket } from 'node:net';
import type { GuestPlatform } from './platform';
import type { RunGate } from './run-gate';

export const MAX_LINE_BYTES = 4096;

export class LineServer {
  private readonly sockets = new Set<Socket>();
  private listening = false;

  constructor(
    private readonly platform: GuestPlatform,
    private readonly gate: RunGate,
    private readonly handle: (line: string) => string,
    /** A request handler threw: the guest is broken. */
    private readonly onFatal: (err: unknown) => void,
  ) {}

  get connections(): number {
    return this.sockets.size;
  }

  /** Listens on the NIC; resolves to "host:port". */
  async start(): Promise<string> {
    const address = await this.platform.listen((socket) => this.accept(socket));
    this.listening = true;
    return address;
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (this.listening) {
      this.listening = false;
      await this.platform.unlisten();
    }
  }

  private accept(socket: Socket): void {
    if (!this.gate.running) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const queue: string[] = [];
    let pending = '';
    let draining = false;

    const drain = async (): Promise<void> => {
      draining = true;
      try {
        while (queue.length > 0) {
          const p = this.platform.checkpoint();
          if (p) await p;
          if (!this.gate.running || socket.destroyed) {
            socket.destroy();
            return;
          }
          const line = queue.shift() as string;
          let reply: string;
          try {
            reply = this.handle(line);
          } catch (err) {
            socket.destroy();
            this.onFatal(err);
            return;
          }
          socket.write(reply + '\n');
        }
      } finally {
        draining = false;
      }
    };

    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        queue.push(pending.slice(0, nl).replace(/\r$/, ''));
        pending = pending.slice(nl + 1);
      }
      if (pending.length > MAX_LINE_BYTES) {
        socket.end('ERR line too long\n');
        return;
      }
      if (!draining && queue.length > 0) void drain();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }
}
