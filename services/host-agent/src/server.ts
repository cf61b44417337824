// HostAgentService over gRPC: each RPC is one HostAgent method (libs/agent), with errors mapped
// to gRPC statuses and reasons by the runtime's unary().

import type { HostAgent } from '@ferry/agent';
import { HostAgentService, type HostAgentServer } from '@ferry/proto';
import { startGrpcServer, unary, type Logger, type StartedGrpcServer } from '@ferry/runtime';
import { HostAgentMetrics, observedHostAgent } from './observability';

export const HOST_AGENT_SERVICE_NAME = 'ferry.v1.HostAgentService';

export function hostAgentServer(agent: HostAgent, logger: Logger): HostAgentServer {
  return {
    getHostInfo: unary(logger, 'GetHostInfo', () => agent.getHostInfo()),
    listDomains: unary(logger, 'ListDomains', () => agent.listDomains()),
    getDomain: unary(logger, 'GetDomain', (req) => agent.getDomain(req)),
    createDomain: unary(logger, 'CreateDomain', (req) => agent.createDomain(req)),
    createRestoreDomain: unary(logger, 'CreateRestoreDomain', (req) => agent.createRestoreDomain(req)),
    pauseDomain: unary(logger, 'PauseDomain', (req) => agent.pauseDomain(req)),
    unpauseDomain: unary(logger, 'UnpauseDomain', (req) => agent.unpauseDomain(req)),
    suspendDomain: unary(logger, 'SuspendDomain', (req) => agent.suspendDomain(req)),
    resumeDomain: unary(logger, 'ResumeDomain', (req) => agent.resumeDomain(req)),
    destroyDomain: unary(logger, 'DestroyDomain', (req) => agent.destroyDomain(req)),
    releaseDomain: unary(logger, 'ReleaseDomain', (req) => agent.releaseDomain(req)),
    getVcpuContext: unary(logger, 'GetVcpuContext', (req) => agent.getVcpuContext(req)),
    setVcpuContext: unary(logger, 'SetVcpuContext', (req) => agent.setVcpuContext(req)),
    checkMigration: unary(logger, 'CheckMigration', (req) => agent.checkMigration(req)),
  };
}

/** Serves `agent` on `address` (e.g. 127.0.0.1:0) and tells it the address it got. */
export async function startHostAgentServer(agent: HostAgent, address: string, logger: Logger, metrics = new HostAgentMetrics()): Promise<StartedGrpcServer> {
  const server = await startGrpcServer({
    address,
    logger,
    services: [{ name: HOST_AGENT_SERVICE_NAME, definition: HostAgentService, implementation: observedHostAgent(hostAgentServer(agent, logger), metrics) }],
  });
  agent.setOwnAddress(server.address);
  return server;
}
