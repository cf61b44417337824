// @ferry/hypervisor: the hypervisor boundary (driver.ts) and its drivers.
export * from './driver';

// The emulated driver (an emulated Xen host process reached over a unix socket).
export { EmulatedDriver, connectEmulatedDriver } from './emulated/driver';
export { suspendHandshake, DEFAULT_SUSPEND_TIMEOUT_MS, RELEASE_DOMAIN_WATCH } from './emulated/suspend-handshake';

// Shared by the emulated host, its guest workers and the emulated driver.
export { DomainMemory, bitsetSnapshot } from './emulated/domain-memory';
export {
  EMU_MEMORY_MAGIC,
  EMU_MEMORY_LAYOUT_VERSION,
  WINDOW_PAGES,
  WINDOW_BYTES,
  HEADER,
  CONTROL_BYTE_OFFSET,
  CONTROL_WORDS,
  DomainStateCode,
  metaLayout,
  bitmapBytes,
  hostShmPrefix,
  domainMemoryNames,
  type MetaLayout,
  type DomainMemoryNames,
} from './emulated/memory-layout';
export {
  HYPERCALL_SOCKET_NAME,
  HYPERCALL_OPS,
  MAX_FRAME_BYTES,
  FrameDecoder,
  ProtocolError,
  encodeFrame,
  encodePfns,
  decodePfns,
  type HypercallOps,
  type HypercallOp,
  type Frame,
  type FrameHeader,
  type RequestHeader,
  type ResponseHeader,
  type WatchEventHeader,
} from './emulated/protocol';
export { HypercallClient, type HypercallReply } from './emulated/hypercall-client';
export { connectDriverFromEnv } from './connect';
