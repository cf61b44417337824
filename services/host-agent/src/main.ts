// Process entry of the host agent: node --import tsx services/host-agent/src/main.ts
//
// Environment (services/README.md): FERRY_HOST, FERRY_LISTEN, NATS_URL, FERRY_DRIVER,
// FERRY_EMU_SOCKET, FERRY_MEMORY_TRACKER, FERRY_BALLOON_MANAGER, FERRY_PAGE_STREAMER,
// FERRY_LOG_LEVEL, FERRY_METRICS_LISTEN, OTEL_*.
//
// Serves HostAgentService, registers the host in the NATS KV host registry (ferry_hosts) with the
// addresses of its four services and keeps the entry alive with heartbeats; logs "ready" only
// once the first registration is stored. SIGTERM/SIGINT: deregister, stop serving, exit 0.

import { telemetry } from './telemetry'; // first: instruments @grpc/grpc-js before it loads
import { hostname } from 'node:os';
import { FERRY_VERSION, HostAgent } from '@ferry/agent';
import { registerHost } from '@ferry/cluster';
import type { HypervisorDriver } from '@ferry/hypervisor';
// connect.ts is not re-exported by @ferry/hypervisor's index (yet).
import { connectDriverFromEnv } from '@ferry/hypervisor';
import { createLogger, env, onShutdownSignal, type StartedGrpcServer } from '@ferry/runtime';
import { serveMetrics, type MetricsServer } from '@ferry/telemetry';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { HostAgentMetrics } from './observability';
import { startHostAgentServer } from './server';

const host = env('FERRY_HOST', hostname());
const logger = createLogger('host-agent', { host });

let driver: HypervisorDriver | undefined;
let server: StartedGrpcServer | undefined;
let nats: NatsConnection | undefined;
let registration: { stop(): Promise<void> } | undefined;
let metricsServer: MetricsServer | undefined;

/** Releases whatever has been set up so far, newest first: the registry entry goes before anything else. */
async function stop(): Promise<void> {
  await registration?.stop();
  await nats?.drain().catch(() => nats?.close());
  await server?.shutdown();
  await driver?.close();
  await metricsServer?.close();
  await telemetry.shutdown();
}

async function main(): Promise<void> {
  onShutdownSignal(logger, stop);
  const peers = {
    memoryTracker: process.env.FERRY_MEMORY_TRACKER ?? '',
    balloonManager: process.env.FERRY_BALLOON_MANAGER ?? '',
    pageStreamer: process.env.FERRY_PAGE_STREAMER ?? '',
  };
  for (const [service, address] of Object.entries(peers)) {
    if (address === '') logger.warn({ service }, 'no address configured for this host service; the registry entry will name none');
  }
  const hypervisor = await connectDriverFromEnv();
  driver = hypervisor;
  const agent = new HostAgent({
    driver: hypervisor,
    logger,
    identity: { name: host, ferryVersion: FERRY_VERSION, endpoints: { hostAgent: '', ...peers } },
  });
  const metrics = new HostAgentMetrics();
  metricsServer = await serveMetrics(metrics.registry, env('FERRY_METRICS_LISTEN', '127.0.0.1:0'));
  server = await startHostAgentServer(agent, env('FERRY_LISTEN', '127.0.0.1:0'), logger, metrics);

  const natsUrl = env('NATS_URL', 'nats://127.0.0.1:4222');
  logger.info({ nats: natsUrl }, 'connecting to NATS');
  nats = await connect({ servers: natsUrl, name: `ferry-host-agent/${host}`, waitOnFirstConnect: true, maxReconnectAttempts: -1 });
  registration = await registerHost(nats, () => agent.hostRecord(), (err) =>
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'host registry heartbeat failed'),
  );
  logger.info({ address: server.address, host, driver: hypervisor.kind, nats: natsUrl, metrics_address: metricsServer.address }, 'ready');
}

main().catch(async (err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'host-agent failed to start');
  await stop().catch(() => {});
  process.exit(1);
});
