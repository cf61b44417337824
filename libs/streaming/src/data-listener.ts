// The page streamer's data port: one TCP listener for all receive sessions of this host (the hello
// names the migration). Each connection is read through a StreamReader that takes the kernel's
// reads into fixed buffers (StreamReader.adopting). It knows its open connections so that
// shutdown can end them.

import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { formatEndpoint, parseEndpoint } from './endpoint';
import { StreamReader } from './wire/stream-reader';

export class DataListener {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** "host:port" senders connect to. */
    readonly endpoint: string,
  ) {}

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /**
   * Listens on `address` ("host:port", port 0 for any). A wildcard host (0.0.0.0, ::) is
   * advertised as `advertiseHost` (default: this machine's name).
   */
  static listen(address: string, onConnection: (socket: Socket, reader: StreamReader) => void, advertiseHost?: string): Promise<DataListener> {
    const { host, port } = parseEndpoint(address, { allowPortZero: true });
    let listener: DataListener | undefined;
    // Paused on connect: nothing is read before the reader takes the socket over.
    const server = createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
      const { socket, reader } = StreamReader.adopting(accepted);
      listener?.track(socket);
      onConnection(socket, reader);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const bound = server.address();
        const boundPort = typeof bound === 'object' && bound ? bound.port : port;
        const wildcard = host === '0.0.0.0' || host === '::' || host === '';
        const shown = wildcard ? (advertiseHost ?? hostname()) : host;
        listener = new DataListener(server, formatEndpoint(shown, boundPort));
        resolve(listener);
      });
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
