// The hypervisor boundary. Every per-host service reaches a hypervisor through this interface and
// nothing else. Its semantics are Xen's (see ../shared/reference/xen.md): page frame numbers
// (pfns) of 4 KiB, log-dirty CLEAN/PEEK with {dirty_count, fault_count} and the FINAL mode, a p2m
// that says which pfns are populated (ballooned pfns are not, and read as absent, never as data),
// foreign mapping in batches of at most 1024 pages, xenstore, and the control/shutdown suspend
// handshake. Two drivers implement it: `emulated` (an emulated Xen host process; the default) and
// `xen` (a native addon over libxenctrl; the production path).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Xen's MAX_BATCH_SIZE: getpageframeinfo3 and foreign map batches are capped at 1024 frames. */
export const MAX_BATCH_PAGES = 1024;

export type DomainState = 'running' | 'paused' | 'shutdown';
/** Xen's SHUTDOWN_* reasons, lower-cased. */
export type ShutdownReason = 'poweroff' | 'reboot' | 'suspend' | 'crash' | 'watchdog';
/** x86 guest types: paravirtualised, PVH (an HVM container without emulated devices), fully virtualised. */
export type GuestType = 'pv' | 'pvh' | 'hvm';

export interface DomainInfo {
  domid: number;
  name: string;
  uuid: string;
  state: DomainState;
  /** Set when state is 'shutdown'. */
  shutdownReason: ShutdownReason | null;
  /** Populated pages (Xen's nr_pages / tot_pages). */
  nrPages: number;
  /** Size of the p2m: the highest pfn + 1 the domain may ever populate (static-max). */
  maxPages: number;
  /**
   * Pages the domain may use (Xen's maxmem), for memory checks; absent = maxPages. On Xen an
   * HVM/PVH guest's p2m reaches its special pages near 4 GiB, far above the memory it may use.
   */
  memoryPages?: number;
  vcpus: number;
  /** True while log-dirty mode is enabled. */
  logDirty: boolean;
  /** Set by the xen driver; pre-flight refuses guest types the driver cannot migrate (PV). */
  guestType?: GuestType;
}

export interface HostInfo {
  name: string;
  driver: 'emulated' | 'xen';
  xenVersion: { major: number; minor: number };
  /** Memory the host can give to domains, in pages. */
  totalPages: number;
  /** Pages not populated in any domain. */
  freePages: number;
}

/** The creation of a new running domain (xl create). `workload` is meaningful to the emulated host only. */
export interface DomainSpec {
  name: string;
  /** static-max and initial allocation, in pages. */
  maxPages: number;
  vcpus?: number;
  workload?: WorkloadSpec;
}

/** A guest program for the emulated host, seeded and parameterised. */
export interface WorkloadSpec {
  kind: 'kv' | 'web' | 'db' | 'compile' | 'memtest' | 'idle';
  seed: number;
  /** Fraction of guest memory free (not used by the workload) after boot, 0..1. */
  freeFraction: number;
  /** Writes per second the workload aims at (page writes for memtest; operations otherwise). 0 = workload default. */
  writeRate?: number;
  /** Hot-set size as a fraction of the workload's data, 0..1 (0 = workload default). */
  hotSetFraction?: number;
  /** Zipf exponent of key / page popularity (0 = workload default). */
  zipfS?: number;
  /** Every this many seconds the hot set moves elsewhere (0 = never). */
  phaseSeconds?: number;
  /** memtest only: 'sequential' or 'random' writes. */
  pattern?: 'sequential' | 'random';
}

/** Creation of an empty, paused domain that a restore populates (libxl_domain_create_restore). */
export interface RestoreDomainSpec {
  name: string;
  maxPages: number;
  vcpus: number;
  /**
   * The xen driver: the source domain's libxl JSON config, from which Xen's stock receiver
   * creates the domain (absent = synthesised from name, memory and vCPUs).
   */
  xlConfig?: string;
  /** Pages the domain may use (memoryPages of the source); absent = maxPages. */
  memoryPages?: number;
  /** The source domain's UUID, for a synthesised config. */
  uuid?: string;
}

export interface LogDirtyStats {
  dirtyCount: number;
  faultCount: number;
}

export interface DirtyBitmap {
  /** One bit per pfn, LSB first within each byte: pfn p is bit (p & 7) of byte (p >> 3). Length ceil(maxPages / 8). */
  bitmap: Uint8Array;
  stats: LogDirtyStats;
}

/** A read mapping of a batch of pages (xenforeignmemory_map with PROT_READ). */
export interface ForeignPages {
  pfns: readonly number[];
  /** Page i occupies bytes [i*PAGE_SIZE, (i+1)*PAGE_SIZE). Absent pages are zero-filled and flagged in `errors`. */
  data: Buffer;
  /** Per page: 0, or a negative errno (-ENOENT for a pfn that is not populated). */
  errors: Int32Array;
  /** Releases the mapping. Data must not be used afterwards. */
  unmap(): void;
}

export interface XenstoreWatch {
  close(): Promise<void>;
}

/** An error from the hypervisor with an errno-like code, so callers can map it to a gRPC status. */
export class HypervisorError extends Error {
  constructor(
    readonly code: HypervisorErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HypervisorError';
  }
}

export type HypervisorErrorCode =
  | 'ESRCH' // no such domain
  | 'EEXIST' // a domain with that name exists
  | 'ENOMEM' // host capacity exceeded
  | 'EINVAL' // malformed argument (bad pfn, oversized batch, ...)
  | 'E2BIG' // a batch larger than MAX_BATCH_PAGES
  | 'EBUSY' // wrong state for the operation (e.g. pause a shut-down domain)
  | 'ETIMEDOUT' // the guest did not answer in time (suspend handshake)
  | 'EIO'; // the hypervisor connection failed

export interface HypervisorDriver {
  readonly kind: 'emulated' | 'xen';

  hostInfo(): Promise<HostInfo>;
  listDomains(): Promise<DomainInfo[]>;
  /** Throws HypervisorError('ESRCH') for an unknown domid. */
  domainInfo(domid: number): Promise<DomainInfo>;

  /** xl create: a new running domain. */
  createDomain(spec: DomainSpec): Promise<number>;
  /** An empty, paused domain for a restore to populate. */
  createRestoreDomain(spec: RestoreDomainSpec): Promise<number>;
  destroy(domid: number): Promise<void>;

  pause(domid: number): Promise<void>;
  unpause(domid: number): Promise<void>;
  /**
   * The suspend handshake: write "suspend" to control/shutdown, wait for the guest to acknowledge
   * (it writes "" back), then wait until the domain is shut down with reason 'suspend'.
   */
  suspend(domid: number, opts?: { timeoutMs?: number }): Promise<void>;
  /** Resume a suspended domain in place after a cancelled migration (xc_domain_resume, fast=1). */
  resumeSuspended(domid: number): Promise<void>;

  logDirtyEnable(domid: number): Promise<void>;
  logDirtyDisable(domid: number): Promise<void>;
  /** Returns the dirty bitmap and resets it. `final` is XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL. */
  logDirtyClean(domid: number, opts?: { final?: boolean }): Promise<DirtyBitmap>;
  /** Returns the dirty bitmap without resetting it. */
  logDirtyPeek(domid: number): Promise<DirtyBitmap>;

  /** Populated pfns, as a bitmap in the DirtyBitmap bit order. */
  p2m(domid: number): Promise<Uint8Array>;

  /** Read-map up to MAX_BATCH_PAGES pages of a running or paused domain. */
  mapForeignPages(domid: number, pfns: readonly number[]): Promise<ForeignPages>;
  /** Populate (where not yet populated) and write up to MAX_BATCH_PAGES pages of a paused domain. */
  writePages(domid: number, pfns: readonly number[], data: Uint8Array): Promise<void>;

  /**
   * The domain's toolstack config as the stock receiver of this hypervisor takes it (the xen
   * driver: libxl's JSON, as `xl migrate` sends it); null where there is none (emulated).
   */
  toolstackConfig?(domid: number): Promise<string | null>;

  /**
   * Whether suspend() can reach this domain, and how: null when it can, else why not. Drivers
   * without it require the guest to advertise control/feature-suspend (the emulated handshake).
   */
  suspendProblem?(domid: number): Promise<string | null>;

  /** Opaque vCPU/device state of a paused or suspended domain, and its restore. */
  getVcpuContext(domid: number): Promise<Uint8Array>;
  setVcpuContext(domid: number, context: Uint8Array): Promise<void>;

  /** Absolute xenstore paths (e.g. /local/domain/3/memory/target). Read returns null when absent. */
  xenstoreRead(path: string): Promise<string | null>;
  xenstoreWrite(path: string, value: string): Promise<void>;
  /** Calls `onChange(path)` for every write under `path` (and once at registration, as Xen does). */
  xenstoreWatch(path: string, onChange: (path: string) => void): Promise<XenstoreWatch>;

  close(): Promise<void>;
}

/** Xenstore paths of a domain, relative to /local/domain/<domid>. */
export const xsPaths = {
  domain: (domid: number) => `/local/domain/${domid}`,
  memoryTarget: (domid: number) => `/local/domain/${domid}/memory/target`, // KiB
  memoryStaticMax: (domid: number) => `/local/domain/${domid}/memory/static-max`, // KiB
  controlShutdown: (domid: number) => `/local/domain/${domid}/control/shutdown`,
  featureSuspend: (domid: number) => `/local/domain/${domid}/control/feature-suspend`,
  /** The guest agent's report of free memory, in KiB (as XenServer guest tools write it). */
  meminfoFree: (domid: number) => `/local/domain/${domid}/data/meminfo_free`,
  meminfoTotal: (domid: number) => `/local/domain/${domid}/data/meminfo_total`,
  /** The guest's network service address, "host:port" (emulated guests). */
  serviceAddress: (domid: number) => `/local/domain/${domid}/data/service-address`,
  /** The guest's workload counters as JSON {ops, errors, ...} (emulated guests). */
  workloadStats: (domid: number) => `/local/domain/${domid}/data/workload`,
};

export function pagesToKiB(pages: number): number {
  return pages * (PAGE_SIZE / 1024);
}

export function kibToPages(kib: number): number {
  return Math.floor(kib / (PAGE_SIZE / 1024));
}

/** Number of set bits in a pfn bitmap. */
export function bitmapCount(bitmap: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bitmap.length; i++) {
    let b = bitmap[i];
    while (b) {
      b &= b - 1;
      n++;
    }
  }
  return n;
}

export function bitmapTest(bitmap: Uint8Array, pfn: number): boolean {
  return ((bitmap[pfn >> 3] >> (pfn & 7)) & 1) === 1;
}

export function bitmapSet(bitmap: Uint8Array, pfn: number): void {
  bitmap[pfn >> 3] |= 1 << (pfn & 7);
}

/** The pfns whose bits are set, in ascending order. */
export function bitmapPfns(bitmap: Uint8Array, limit = bitmap.length * 8): number[] {
  const out: number[] = [];
  for (let byte = 0; byte < bitmap.length; byte++) {
    let b = bitmap[byte];
    while (b) {
      const bit = 31 - Math.clz32(b & -b);
      const pfn = (byte << 3) | bit;
      if (pfn < limit) out.push(pfn);
      b &= b - 1;
    }
  }
  return out;
}
