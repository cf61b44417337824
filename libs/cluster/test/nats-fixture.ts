// A real nats-server with JetStream for one test file: started in a temporary folder on a free
// loopback port, stopped and removed afterwards.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, stopProcess } from '@ferry/lab';

export interface NatsFixture {
  url: string;
  dir: string;
  connect(): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function startNats(): Promise<NatsFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-nats-'));
  const { url, process: proc } = await startNatsServer(join(dir, 'data'), join(dir, 'nats-server.log'), false);
  const connections: NatsConnection[] = [];
  return {
    url,
    dir,
    async connect() {
      const nc = await connect({ servers: url });
      connections.push(nc);
      return nc;
    },
    async stop() {
      for (const nc of connections) await nc.close().catch(() => {});
      await stopProcess(proc.pid);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
