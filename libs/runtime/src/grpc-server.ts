// Starting a Ferry gRPC server: the service's own implementation, the standard health service, and
// (where asked) server reflection; graceful shutdown on SIGTERM/SIGINT.

import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from './logger';

export interface GrpcServiceBinding {
  /** Fully qualified name, e.g. "ferry.v1.HostAgentService" (used for the health status). */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface StartedGrpcServer {
  server: Server;
  /** host:port actually bound (port 0 resolves to the real port). */
  address: string;
  port: number;
  health: HealthImplementation;
  shutdown(): Promise<void>;
}

/** Server options shared by every Ferry server: page batches and bitmaps can exceed gRPC's 4 MiB default. */
export const GRPC_MESSAGE_LIMITS = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

export async function startGrpcServer(opts: {
  address: string;
  services: GrpcServiceBinding[];
  logger: Logger;
  /** Called with the server before it starts, e.g. to add reflection. */
  extend?: (server: Server) => void;
}): Promise<StartedGrpcServer> {
  const server = new Server(GRPC_MESSAGE_LIMITS);
  const statusMap: Record<string, 'SERVING' | 'NOT_SERVING'> = { '': 'SERVING' };
  for (const s of opts.services) {
    server.addService(s.definition, s.implementation);
    statusMap[s.name] = 'SERVING';
  }
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);
  opts.extend?.(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const host = opts.address.slice(0, opts.address.lastIndexOf(':'));
  const address = `${host}:${port}`;
  opts.logger.info({ address, services: opts.services.map((s) => s.name) }, 'gRPC server listening');
  let closed = false;
  return {
    server,
    address,
    port,
    health,
    shutdown: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        for (const s of opts.services) health.setStatus(s.name, 'NOT_SERVING');
        const force = setTimeout(() => server.forceShutdown(), 5000);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/** Runs `stop` once on SIGTERM or SIGINT, then exits. */
export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop()
      .catch((err) => logger.error({ err }, 'error during shutdown'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
