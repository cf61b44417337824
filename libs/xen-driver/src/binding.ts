// The native addon (src/native/*.c, built into build/Release/ferry_xen.node where libxen-dev's
// headers exist) and how it is loaded: lazily, with a message that says why it is missing and
// what to do, because most hosts run the emulated driver and never build it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { XENCTRL_HEADER } from './xen-constants';

/** One getdomaininfo record, as Xen returns it (decoded by domain-record.ts). */
export interface RawDomainRecord {
  domid: number;
  /** XEN_DOMINF_* flags; the shutdown reason in bits 16..23. */
  flags: number;
  totPages: number;
  /** Xen's allocation limit (maxmem), in pages. */
  maxPages: number;
  outstandingPages: number;
  sharedPages: number;
  pagedPages: number;
  sharedInfoFrame: number;
  cpuTimeNs: bigint;
  nrOnlineVcpus: number;
  /** 0xffffffff when the domain has no vCPU. */
  maxVcpuId: number;
  cpupool: number;
  gpaddrBits: number;
  /** XEN_X86_EMU_* of the domain's creation. */
  emulationFlags: number;
  /** xen_domain_handle_t: the domain's UUID, 16 bytes. */
  handle: Buffer;
}

export interface RawHostInfo {
  xenMajor: number;
  xenMinor: number;
  xenExtra: string;
  totalPages: number;
  freePages: number;
  scrubPages: number;
  outstandingPages: number;
  nrCpus: number;
  cpuKhz: number;
}

export interface RawTscInfo {
  mode: number;
  elapsedNsec: bigint;
  khz: number;
  incarnation: number;
}

/** The methods of the addon's XenInterface. Each call is one or a few libxen calls on a worker thread. */
export interface NativeXenInterface {
  /** Releases the handles once no call is in flight; later calls throw EBADF. */
  close(): void;
  hostInfo(): Promise<RawHostInfo>;
  domainList(): Promise<RawDomainRecord[]>;
  /** Rejects with ESRCH when the domain does not exist. */
  domainInfo(domid: number): Promise<RawDomainRecord>;
  /** The p2m size: highest populated gfn + 1 (xc_domain_nr_gpfns). */
  nrGpfns(domid: number): Promise<number>;
  pause(domid: number): Promise<void>;
  unpause(domid: number): Promise<void>;
  /** xc_domain_shutdown(SHUTDOWN_suspend): libxl's suspend of an HVM guest without PV control. */
  shutdownSuspend(domid: number): Promise<void>;
  destroy(domid: number): Promise<void>;
  resume(domid: number, fast: boolean): Promise<void>;
  /** op: ShadowOp.ENABLE_LOGDIRTY or ShadowOp.OFF. */
  shadowControl(domid: number, op: number): Promise<void>;
  /** op: ShadowOp.CLEAN or ShadowOp.PEEK. `bitmap` has ceil(pages / 8) bytes, Xen's bit order. */
  logDirtyControl(
    domid: number,
    op: number,
    final: boolean,
  ): Promise<{ bitmap: Buffer; pages: number; dirtyCount: number; faultCount: number }>;
  /** One type nibble (PageType) per pfn; any number of pfns. */
  pageTypes(domid: number, pfns: Uint32Array): Promise<Buffer>;
  /** Reads ≤ 1024 pages into out; pages with skip[i] ≠ 0 are zero-filled with error -ENOENT. */
  readPages(domid: number, pfns: Uint32Array, skip: Uint8Array, out: Uint8Array): Promise<Int32Array>;
  /** Populates `populate`, then writes ≤ 1024 pages from data. */
  writePages(domid: number, pfns: Uint32Array, populate: Uint32Array, data: Uint8Array): Promise<void>;
  hvmContext(domid: number): Promise<Buffer>;
  setHvmContext(domid: number, context: Uint8Array): Promise<void>;
  hvmParams(domid: number, indices: Uint32Array): Promise<BigUint64Array>;
  setHvmParams(domid: number, indices: Uint32Array, values: BigUint64Array): Promise<void>;
  tscInfo(domid: number): Promise<RawTscInfo>;
  setTscInfo(domid: number, mode: number, elapsedNsec: bigint, khz: number, incarnation: number): Promise<void>;
  /** Serialised xen_cpuid_leaf_t (24 bytes each) and xen_msr_entry_t (16 bytes each) arrays. */
  cpuPolicy(domid: number): Promise<{ leaves: Buffer; msrs: Buffer }>;
  setCpuPolicy(domid: number, leaves: Uint8Array, msrs: Uint8Array): Promise<void>;
  /** null when the path does not exist. */
  xsRead(path: string): Promise<string | null>;
  xsWrite(path: string, value: string): Promise<void>;
  /** Removes a path and everything under it; absent is fine. */
  xsRemove(path: string): Promise<void>;
  xsResumeDomain(domid: number): Promise<void>;
  xsWatch(path: string, token: string): Promise<void>;
  xsUnwatch(path: string, token: string): Promise<void>;
}

/** Called for each xenstore watch event; a broken connection is reported once with an error. */
export type WatchEventCallback = (path: string | null, token: string | null, error?: Error) => void;

export interface XenBinding {
  XenInterface: new (onWatchEvent: WatchEventCallback) => NativeXenInterface;
  /** XEN_DOMCTL_INTERFACE_VERSION of the headers the addon was built with (0x15 for 4.17). */
  domctlInterfaceVersion: number;
}

/** Every method of NativeXenInterface, for checking a loaded addon. */
export const NATIVE_METHODS: readonly (keyof NativeXenInterface)[] = [
  'close',
  'hostInfo',
  'domainList',
  'domainInfo',
  'nrGpfns',
  'pause',
  'unpause',
  'shutdownSuspend',
  'destroy',
  'resume',
  'shadowControl',
  'logDirtyControl',
  'pageTypes',
  'readPages',
  'writePages',
  'hvmContext',
  'setHvmContext',
  'hvmParams',
  'setHvmParams',
  'tscInfo',
  'setTscInfo',
  'cpuPolicy',
  'setCpuPolicy',
  'xsRead',
  'xsWrite',
  'xsRemove',
  'xsResumeDomain',
  'xsWatch',
  'xsUnwatch',
];

/** Where the addon is: FERRY_XEN_ADDON, or build/Release of this package. */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_XEN_ADDON || join(__dirname, '..', 'build', 'Release', 'ferry_xen.node');
}

/** Thrown when the addon cannot be used on this host: not built, or built but not loadable. */
export class XenDriverNotBuiltError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XenDriverNotBuiltError';
  }
}

/** Whether the headers that decide the build are present and whether the addon file exists. */
export function buildStatus(path = addonPath(), header = XENCTRL_HEADER): { headers: boolean; built: boolean; path: string } {
  return { headers: existsSync(header), built: existsSync(path), path };
}

const loaded = new Map<string, XenBinding>();

/** Loads the addon, or throws XenDriverNotBuiltError saying why it cannot be used and what to do. */
export function loadXenBinding(path = addonPath(), header = XENCTRL_HEADER): XenBinding {
  const cached = loaded.get(path);
  if (cached) return cached;
  const status = buildStatus(path, header);
  if (!status.built) {
    throw new XenDriverNotBuiltError(
      status.headers
        ? `the native Xen driver is not built (${path} is missing) although libxen-dev is installed: ` +
            'build it with `npm run build -w @ferry/xen-driver`'
        : `the native Xen driver is not built: libxen-dev 4.17 (${header}) is not installed on this host; ` +
            'install it (apt-get install libxen-dev) and run `npm run build -w @ferry/xen-driver`',
    );
  }
  let binding: XenBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(path) as XenBinding;
  } catch (err) {
    throw new XenDriverNotBuiltError(
      `the native Xen driver (${path}) could not be loaded: ${err instanceof Error ? err.message : String(err)}. ` +
        "It needs Xen 4.17's runtime libraries (libxenmisc4.17, libxenforeignmemory1, libxenstore4, libxentoollog1)",
    );
  }
  for (const method of NATIVE_METHODS) {
    if (typeof binding.XenInterface?.prototype?.[method] !== 'function') {
      throw new XenDriverNotBuiltError(`the native Xen driver (${path}) is stale: it lacks XenInterface.${method}; rebuild it`);
    }
  }
  loaded.set(path, binding);
  return binding;
}
