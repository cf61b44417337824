// The migration-coordinator process: NATS (records, events, the host registry), the coordinator,
// its gRPC server, and its metrics (fed by the event stream). Environment: FERRY_LISTEN, NATS_URL,
// FERRY_LOG_LEVEL, FERRY_METRICS_LISTEN, OTEL_* (see services/README.md) and the admission caps
// FERRY_MAX_MIGRATIONS (cluster, default 4), FERRY_MAX_OUTBOUND (per source host, 1),
// FERRY_MAX_INBOUND (per target host, 1), and FERRY_DEFAULT_POLICY (xen-4.17, xen-legacy or
// layered; default layered).

import { telemetry } from './telemetry'; // first: instruments @grpc/grpc-js before it loads
import { connect } from '@nats-io/transport-node';
import { MigrationEvents } from '@ferry/cluster';
import { Coordinator, DEFAULT_CAPS, policyFromName } from '@ferry/coordinator';
import { createLogger, env, envInt, onShutdownSignal } from '@ferry/runtime';
import { describeTraceExport, serveMetrics } from '@ferry/telemetry';
import { feedMetricsFromEvents } from './metrics-feed';
import { MigrationMetrics } from './migration-metrics';
import { startMigrationServer } from './server';

async function main(): Promise<void> {
  const logger = createLogger('migration-coordinator');
  const natsUrl = env('NATS_URL', 'nats://127.0.0.1:4222');
  const nc = await connect({ servers: natsUrl, name: 'migration-coordinator', maxReconnectAttempts: -1 });
  const coordinator = await Coordinator.start({
    nc,
    logger,
    config: {
      caps: {
        cluster: envInt('FERRY_MAX_MIGRATIONS', DEFAULT_CAPS.cluster),
        perSource: envInt('FERRY_MAX_OUTBOUND', DEFAULT_CAPS.perSource),
        perTarget: envInt('FERRY_MAX_INBOUND', DEFAULT_CAPS.perTarget),
      },
      defaultPolicy: policyFromName(env('FERRY_DEFAULT_POLICY', 'layered')),
    },
  });
  const metrics = new MigrationMetrics();
  const metricsServer = await serveMetrics(metrics.registry, env('FERRY_METRICS_LISTEN', '127.0.0.1:0'));
  const stopFeeding = new AbortController();
  const feeding = feedMetricsFromEvents(await MigrationEvents.open(nc), metrics, logger, stopFeeding.signal);
  const server = await startMigrationServer(coordinator, env('FERRY_LISTEN', '127.0.0.1:0'), logger);
  logger.info({ address: server.address, nats: natsUrl, metrics_address: metricsServer.address, traces: describeTraceExport(telemetry.traces) }, 'ready');
  onShutdownSignal(logger, async () => {
    await Promise.all([server.shutdown(), coordinator.close()]);
    stopFeeding.abort();
    await feeding;
    await nc.drain().catch(() => {});
    await metricsServer.close();
    await telemetry.shutdown().catch(() => {});
  });
}

main().catch((err: unknown) => {
  createLogger('migration-coordinator').fatal({ err }, 'migration-coordinator failed to start');
  process.exit(1);
});
