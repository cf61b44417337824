// Process entry of the balloon manager: node --import tsx services/balloon-manager/src/main.ts
//
// Environment (services/README.md): FERRY_HOST, FERRY_LISTEN, FERRY_DRIVER, FERRY_EMU_SOCKET,
// FERRY_LOG_LEVEL, FERRY_METRICS_LISTEN, OTEL_*; and optional tunables of compaction (README.md
// in this folder): FERRY_BALLOON_SETTLE_TIMEOUT_MS, FERRY_BALLOON_HEADROOM,
// FERRY_BALLOON_NO_PROGRESS_MS.
//
// SIGTERM/SIGINT: cancel running compactions, end every freeze (targets stay where they are),
// stop serving, exit 0.

import { telemetry } from './telemetry'; // first: instruments @grpc/grpc-js before it loads
import { hostname } from 'node:os';
import { BalloonManager, DEFAULT_COMPACTION_SETTINGS } from '@ferry/balloon';
import type { HypervisorDriver } from '@ferry/hypervisor';
// connect.ts is not re-exported by @ferry/hypervisor's index (yet).
import { connectDriverFromEnv } from '@ferry/hypervisor';
import { createLogger, env, envInt, onShutdownSignal, type StartedGrpcServer } from '@ferry/runtime';
import { serveMetrics, type MetricsServer } from '@ferry/telemetry';
import { BalloonManagerMetrics } from './observability';
import { startBalloonManagerServer } from './server';

const host = env('FERRY_HOST', hostname());
const logger = createLogger('balloon-manager', { host });

let driver: HypervisorDriver | undefined;
let manager: BalloonManager | undefined;
let server: StartedGrpcServer | undefined;
let metricsServer: MetricsServer | undefined;

async function stop(): Promise<void> {
  await server?.shutdown();
  await manager?.close();
  await driver?.close();
  await metricsServer?.close();
  await telemetry.shutdown();
}

async function main(): Promise<void> {
  onShutdownSignal(logger, stop);
  const settings = {
    settleTimeoutMs: envInt('FERRY_BALLOON_SETTLE_TIMEOUT_MS', DEFAULT_COMPACTION_SETTINGS.settleTimeoutMs),
    headroomFraction: envInt('FERRY_BALLOON_HEADROOM', DEFAULT_COMPACTION_SETTINGS.headroomFraction),
    noProgressMs: envInt('FERRY_BALLOON_NO_PROGRESS_MS', DEFAULT_COMPACTION_SETTINGS.noProgressMs),
  };
  for (const [name, value] of Object.entries(settings)) {
    if (!(value > 0)) throw new Error(`balloon setting ${name} must be positive, got ${value}`);
  }
  const hypervisor = await connectDriverFromEnv();
  driver = hypervisor;
  manager = new BalloonManager({ driver: hypervisor, logger, settings });
  const metrics = new BalloonManagerMetrics();
  metricsServer = await serveMetrics(metrics.registry, env('FERRY_METRICS_LISTEN', '127.0.0.1:0'));
  server = await startBalloonManagerServer(manager, env('FERRY_LISTEN', '127.0.0.1:0'), logger, metrics);
  logger.info({ address: server.address, host, driver: hypervisor.kind, settings, metrics_address: metricsServer.address }, 'ready');
}

main().catch(async (err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'balloon-manager failed to start');
  await stop().catch(() => {});
  process.exit(1);
});
