// @ferry/xen-driver: HypervisorDriver over a real Xen 4.17 host (a dom0), through a small N-API
// addon over Debian's libxen-dev. Loaded lazily by @ferry/hypervisor's connectDriverFromEnv when
// FERRY_DRIVER=xen; nothing here loads the addon until a driver is opened.

export { XenDriver, connectXenDriver, pfnArray, type XenDriverOptions } from './xen-driver';
export {
  addonPath,
  buildStatus,
  loadXenBinding,
  NATIVE_METHODS,
  XenDriverNotBuiltError,
  type NativeXenInterface,
  type RawDomainRecord,
  type RawHostInfo,
  type RawTscInfo,
  type WatchEventCallback,
  type XenBinding,
} from './binding';
export {
  CONTEXT_MAGIC,
  CONTEXT_VERSION,
  ContextRecord,
  OPTIONAL_RECORD_BIT,
  CPUID_LEAF_BYTES,
  MSR_ENTRY_BYTES,
  contextRecords,
  packVcpuContext,
  unpackVcpuContext,
  type ContextRecordView,
  type XenDomainFacts,
  type XenTscInfo,
  type XenVcpuContext,
} from './vcpu-context-blob';
export { domainState, guestType, shutdownReason, toDomainInfo, uuidFromHandle, vcpuCount, isDying, type DomainExtras } from './domain-record';
export { markPopulated, pageHasData, pfnBitmapFromXen } from './pfn-bitmaps';
export { hypervisorCode, toHypervisorError } from './errors';
export { LOG_DIRTY_MARKER_ROOT, logDirtyMarkerPath, markerSaysEnabled } from './log-dirty-marker';
export { WatchRegistry, type WatchListener } from './watch-registry';
export {
  DomInfoFlag,
  PageType,
  PRIVCMD_PATH,
  RESTORE_HVM_PARAMS,
  ShadowOp,
  ShutdownCode,
  X86_EMU_LAPIC,
  XENCTRL_HEADER,
} from './xen-constants';
export { configFromXlList, synthesiseConfig } from './xl-config';
export { XL_PERMISSION_TO_GO, XL_RECEIVER_BANNER, XL_RECEIVER_READY, XL_REPORT, XlAckParser, type XlAckEvent } from './xl-handshake';
export { DEFAULT_XL_RECEIVE_DIR, metaPath, readXlReceiveMeta, socketPath, xlReceiveDir, type XlReceiveMeta } from './xl-rendezvous';
export { XlReceiver, type XlReceiverOptions } from './xl-receiver';
export { XlRestoreFeed, finalStateOf } from './xl-restore-feed';
