// @ferry/memory-tracker: the service's gRPC adapter, for in-process servers in tests and tools.
export { memoryTrackerHandlers, startMemoryTrackerServer, type MemoryTrackerServerHandle } from './server';
