// @ferry/host-agent: the host-agent process (main.ts) and its gRPC adapter, for in-process use.
export { hostAgentServer, startHostAgentServer, HOST_AGENT_SERVICE_NAME } from './server';
