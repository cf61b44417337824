// @ferry/guest: the emulated guest. The emulated host runs createKernel() in a worker thread over
// shared memory; see platform.ts for the contract.

export * from './platform';
export { createKernel, type FerryKernel, type GuestIntrospection, type KernelOptions } from './kernel';
export { PhysMem, GuestFault } from './phys-mem';
export { PageAllocator } from './page-allocator';
export { BalloonList } from './balloon-list';
export {
  BalloonDriver,
  BALLOON_BATCH_PAGES,
  BALLOON_BASE_DELAY_MS,
  BALLOON_MAX_DELAY_MS,
  BALLOON_MAX_RETRY_COUNT,
  BALLOON_CANCELED_WAIT_MS,
  type BalloonHooks,
  type BalloonState,
} from './balloon';
export { GUEST_PATHS, REPORT_INTERVAL_MS } from './status-reporter';
export { CONTEXT_BYTES } from './vcpu';
export * from './layout';
export type { Workload, WorkloadKind } from './workloads/workload';
export { workloadParams } from './workloads';
export { KvClient, KvError, LoadGenerator, type KvClientOptions, type KvErrorCode, type LoadGeneratorOptions, type LoadStats } from './kv-client';
export { KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES } from './kv-protocol';
