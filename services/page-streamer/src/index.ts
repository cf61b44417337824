// @ferry/page-streamer: the service's gRPC adapter, for in-process servers in tests and tools.
export { pageStreamerHandlers, startPageStreamerServer, type PageStreamerServerHandle } from './server';
