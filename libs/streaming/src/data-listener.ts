// The page streamer's data port: one TCP listener for all receive sessions of this host (the hello
// names the migration). It knows its open connections so that shutdown can end them.

import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { formatEndpoint, parseEndpoint } from './endpoint';

export class DataListener {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    /** "host:port" senders connect to. */
    readonly endpoint: string,
  ) {
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /**
   * Listens on `address` ("host:port", port 0 for any). A wildcard host (0.0.0.0, ::) is
   * advertised as `advertiseHost` (default: this machine's name).
   */
  static listen(address: string, onConnection: (socket: Socket) => void, advertiseHost?: string): Promise<DataListener> {
    const { host, port } = parseEndpoint(address, { allowPortZero: true });
    const server = createServer({ noDelay: true }, onConnection);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const bound = server.address();
        const boundPort = typeof bound === 'object' && bound ? bound.port : port;
        const wildcard = host === '0.0.0.0' || host === '::' || host === '';
        const shown = wildcard ? (advertiseHost ?? hostname()) : host;
        resolve(new DataListener(server, formatEndpoint(shown, boundPort)));
      });
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
