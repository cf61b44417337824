export {
  SharedMemoryObject,
  SHM_PAGE_SIZE,
  MAX_WINDOW_BYTES,
  MAX_MAPPING_BYTES,
  unlinkSharedMemory,
  listSharedMemory,
  liveMappingCount,
} from './shared-memory-object';
export type { ShmBinding } from './binding';
