// The memory-tracker process (services/README.md): FERRY_LISTEN, the hypervisor driver from
// FERRY_DRIVER / FERRY_EMU_SOCKET, metrics on FERRY_METRICS_LISTEN, OTEL_*; logs "ready" with its
// address (and metrics_address) once serving.

import { telemetry } from './telemetry'; // first: instruments @grpc/grpc-js before it loads
import { hostname } from 'node:os';
// connect.ts is not re-exported by @ferry/hypervisor's index (yet); import it by path.
import { connectDriverFromEnv } from '@ferry/hypervisor';
import { createLogger, env, onShutdownSignal } from '@ferry/runtime';
import { serveMetrics } from '@ferry/telemetry';
import { MemoryTrackerMetrics } from './observability';
import { startMemoryTrackerServer } from './server';

async function main(): Promise<void> {
  const host = env('FERRY_HOST', hostname());
  const logger = createLogger('memory-tracker', { host });
  const driver = await connectDriverFromEnv();
  const metrics = new MemoryTrackerMetrics();
  const metricsServer = await serveMetrics(metrics.registry, env('FERRY_METRICS_LISTEN', '127.0.0.1:0'));
  const server = await startMemoryTrackerServer({ address: env('FERRY_LISTEN', '127.0.0.1:0'), driver, logger, metrics });
  onShutdownSignal(logger, async () => {
    await server.stop();
    await driver.close();
    await metricsServer.close();
    await telemetry.shutdown();
  });
  logger.info({ address: server.address, driver: driver.kind, metrics_address: metricsServer.address }, 'ready');
}

main().catch((err: unknown) => {
  process.stderr.write(`memory-tracker: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
