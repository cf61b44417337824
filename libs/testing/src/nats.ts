// A real nats-server with JetStream for one test file: started in a temporary folder on a free
// loopback port (the machine's shared server on 4222 is left alone), stopped and removed afterwards.

import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, stopProcess } from '@ferry/lab';
import { tempDir } from './temp-dir';

export interface NatsFixture {
  url: string;
  dir: string;
  /** A client connection, closed by `stop()`. */
  connect(): Promise<NatsConnection>;
  /** Closes the connections made by `connect()`, stops the server and removes its folder. */
  stop(): Promise<void>;
}

export async function startNats(): Promise<NatsFixture> {
  const dir = tempDir('ferry-nats');
  let server: Awaited<ReturnType<typeof startNatsServer>>;
  try {
    server = await startNatsServer(join(dir.path, 'data'), join(dir.path, 'nats-server.log'), false);
  } catch (err) {
    dir.remove();
    throw err;
  }
  const connections: NatsConnection[] = [];
  return {
    url: server.url,
    dir: dir.path,
    async connect() {
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      return nc;
    },
    async stop() {
      for (const nc of connections) await nc.close().catch(() => {});
      await stopProcess(server.process.pid);
      dir.remove();
    },
  };
}
