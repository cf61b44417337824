// The page-streamer process (services/README.md): gRPC on FERRY_LISTEN, the page data port on
// FERRY_DATA_LISTEN (default: FERRY_LISTEN's host, port 0), send sets from the memory tracker at
// FERRY_MEMORY_TRACKER, the hypervisor driver from FERRY_DRIVER / FERRY_EMU_SOCKET, metrics on
// FERRY_METRICS_LISTEN, OTEL_*. Logs "ready" with its address, data endpoint and metrics address
// once serving.

import { telemetry } from './telemetry'; // first: instruments @grpc/grpc-js before it loads
import { hostname } from 'node:os';
// connect.ts is not re-exported by @ferry/hypervisor's index (yet); import it by path.
import { connectDriverFromEnv } from '@ferry/hypervisor';
import { createLogger, env, onShutdownSignal } from '@ferry/runtime';
import { GrpcSendSetSource, NoSendSetSource } from '@ferry/streaming';
import { serveMetrics } from '@ferry/telemetry';
import { PageStreamerMetrics } from './observability';
import { startPageStreamerServer } from './server';

async function main(): Promise<void> {
  const host = env('FERRY_HOST', hostname());
  const logger = createLogger('page-streamer', { host });
  const listen = env('FERRY_LISTEN', '127.0.0.1:0');
  const dataListen = env('FERRY_DATA_LISTEN', `${listen.slice(0, listen.lastIndexOf(':'))}:0`);
  const trackerAddress = process.env.FERRY_MEMORY_TRACKER;
  if (!trackerAddress) logger.warn('FERRY_MEMORY_TRACKER is not set: this streamer can receive, but SendRound will fail');
  const driver = await connectDriverFromEnv();
  const metrics = new PageStreamerMetrics();
  const metricsServer = await serveMetrics(metrics.registry, env('FERRY_METRICS_LISTEN', '127.0.0.1:0'));
  const server = await startPageStreamerServer({
    address: listen,
    dataListen,
    hostName: host,
    driver,
    sendSets: trackerAddress ? new GrpcSendSetSource(trackerAddress) : new NoSendSetSource(),
    logger,
    metrics,
  });
  onShutdownSignal(logger, async () => {
    await server.stop();
    await driver.close();
    await metricsServer.close();
    await telemetry.shutdown();
  });
  logger.info(
    { address: server.address, data_endpoint: server.dataEndpoint, memory_tracker: trackerAddress ?? null, driver: driver.kind, metrics_address: metricsServer.address },
    'ready',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`page-streamer: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
