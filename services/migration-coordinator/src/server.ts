// The gRPC face of the coordinator: ferry.v1.MigrationService over @ferry/coordinator, plus the
// health service (from @ferry/runtime) and server reflection (so grpcurl and friends can list and
// call the API without the .proto files).

import { join } from 'node:path';
import type { Server, ServerWritableStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { Coordinator } from '@ferry/coordinator';
import { MigrationService, type MigrationServer, type WatchMigrationRequest, type WatchMigrationResponse } from '@ferry/proto';
import { startGrpcServer, toServiceError, unary, type Logger, type StartedGrpcServer } from '@ferry/runtime';

const PROTO_ROOT = join(__dirname, '..', '..', '..', 'proto');
const PROTO_FILES = ['common', 'host_agent', 'memory_tracker', 'balloon_manager', 'page_streamer', 'migration', 'events', 'migration_service'].map(
  (f) => `ferry/v1/${f}.proto`,
);

export function migrationService(c: Coordinator, logger: Logger): MigrationServer {
  return {
    startMigration: unary(logger, 'StartMigration', (req) => c.startMigration(req)),
    getMigration: unary(logger, 'GetMigration', async (req) => ({ migration: await c.getMigration(req.migrationId) })),
    listMigrations: unary(logger, 'ListMigrations', (req) => c.listMigrations(req)),
    cancelMigration: unary(logger, 'CancelMigration', async (req) => ({ migration: await c.cancelMigration(req) })),
    listHosts: unary(logger, 'ListHosts', async () => ({ hosts: await c.listHosts() })),
    listDomains: unary(logger, 'ListDomains', (req) => c.listDomains(req)),
    createDomain: unary(logger, 'CreateDomain', (req) => c.createDomain(req)),
    watchMigration: (call) => void watch(c, logger, call),
  };
}

/** Streams a migration's events until the terminal one, or until the client goes away. */
async function watch(c: Coordinator, logger: Logger, call: ServerWritableStream<WatchMigrationRequest, WatchMigrationResponse>): Promise<void> {
  const gone = new AbortController();
  call.on('cancelled', () => gone.abort());
  call.on('close', () => gone.abort());
  try {
    for await (const event of c.watchMigration(call.request.migrationId, call.request.afterSequence, gone.signal)) {
      if (!call.write({ event })) await new Promise((resolve) => call.once('drain', resolve));
    }
    call.end();
  } catch (err) {
    if (gone.signal.aborted) return;
    const se = toServiceError(err);
    logger.warn({ method: 'WatchMigration', code: se.code, err: se.details }, 'request failed');
    call.emit('error', se);
  }
}

function addReflection(server: Server): void {
  const definitions = loadSync(PROTO_FILES, { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  new ReflectionService(definitions).addToServer(server);
}

export function startMigrationServer(c: Coordinator, address: string, logger: Logger): Promise<StartedGrpcServer> {
  return startGrpcServer({
    address,
    logger,
    services: [{ name: 'ferry.v1.MigrationService', definition: MigrationService, implementation: migrationService(c, logger) }],
    extend: addReflection,
  });
}
