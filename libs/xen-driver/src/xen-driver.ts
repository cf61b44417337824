// The xen driver: HypervisorDriver over a real Xen 4.17 hypervisor, from a dom0, through the
// native addon (libxenctrl, libxenforeignmemory, libxenstore). The addon only wraps libxen calls;
// the meaning (states, page types, bitmaps, the vCPU context blob, idempotency) is decided here.
//
// Scope (issue 6): PVH and HVM domUs. PV domUs are listed (guestType 'pv') so that pre-flight can
// refuse them, and their vCPU state is refused here: migrating PV needs page-table normalisation.
// The target side of a migration to a Xen host is Xen's own receiver: createRestoreDomain runs
// `xl migrate-receive` (xl-receiver.ts) and returns the domain it created, unpause gives it the
// permission to go, destroy rolls it back. On a domain that receiver restores, writePages and
// setVcpuContext write Xen's stream into it (xl-restore-feed.ts); on any other paused domain they
// write through libxenctrl directly.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  DEFAULT_SUSPEND_TIMEOUT_MS,
  HypervisorError,
  MAX_BATCH_PAGES,
  PAGE_SIZE,
  suspendHandshake,
  type DirtyBitmap,
  type DomainInfo,
  type DomainSpec,
  type ForeignPages,
  type HostInfo,
  type HypervisorDriver,
  type RestoreDomainSpec,
  type XenstoreWatch,
} from '@ferry/hypervisor';
import { addonPath, loadXenBinding, type NativeXenInterface, type RawDomainRecord } from './binding';
import { domainState, guestType, isDying, shutdownReason, toDomainInfo, uuidFromHandle, vcpuCount } from './domain-record';
import { toHypervisorError } from './errors';
import { logDirtyMarkerPath, markerSaysEnabled } from './log-dirty-marker';
import { PageBufferPool } from './page-buffer-pool';
import { markPopulated, pageHasData, pfnBitmapFromXen } from './pfn-bitmaps';
import { packVcpuContext, unpackVcpuContext } from './vcpu-context-blob';
import { WatchRegistry } from './watch-registry';
import { PRIVCMD_PATH, PageType, RESTORE_HVM_PARAMS, ShadowOp } from './xen-constants';
import { configFromXlList, synthesiseConfig } from './xl-config';
import { XlReceiver } from './xl-receiver';
import { readXlReceiveMeta, xlReceiveDir } from './xl-rendezvous';
import { XlRestoreFeed } from './xl-restore-feed';

/** HVM_PARAM_CALLBACK_IRQ: set once the guest has PV control (libxl__domain_pvcontrol_available). */
const HVM_PARAM_CALLBACK_IRQ = 0;

/** pfns per page-type query while building the p2m bitmap (64 hypercalls of 1024 frames). */
const P2M_SCAN_CHUNK = 64 * 1024;
const XL_TIMEOUT_MS = 120_000;

export interface XenDriverOptions {
  /** Default /dev/xen/privcmd: its absence means this is not a Xen dom0. */
  privcmdPath?: string;
  /** Default: FERRY_XEN_ADDON or the package's build/Release/ferry_xen.node. */
  addonPath?: string;
  /** The name HostInfo reports; default os.hostname(). */
  hostName?: string;
  /** The xl binary used to destroy domains; null = xc_domain_destroy only. Default: found on PATH. */
  xl?: string | null;
  /** Rendezvous folder of the xl receiver and the page-streamer (default FERRY_XL_RECEIVE_DIR or /run/ferry/xl-receive). */
  xlReceiveDir?: string;
  /** Tee of the stream given to xl migrate-receive (default FERRY_XL_STREAM_CAPTURE; none when unset). */
  xlStreamCapture?: string;
}

/** Opens the hypervisor: fails with a clear message outside a dom0 or when the addon is not built. */
export async function connectXenDriver(opts: XenDriverOptions = {}): Promise<XenDriver> {
  const privcmd = opts.privcmdPath ?? PRIVCMD_PATH;
  if (!existsSync(privcmd)) throw new Error(`not a Xen dom0: ${privcmd} not found`);
  const binding = loadXenBinding(opts.addonPath ?? addonPath());
  const watches = new WatchRegistry();
  let native: NativeXenInterface;
  try {
    native = new binding.XenInterface((path, token, error) => watches.dispatch(path, token, error));
  } catch (err) {
    throw toHypervisorError(err);
  }
  return new XenDriver(native, watches, opts);
}

export class XenDriver implements HypervisorDriver {
  readonly kind = 'xen' as const;
  private readonly pool = new PageBufferPool();
  private readonly hostName: string;
  private readonly xl: string | null;
  private readonly receiveDir: string;
  private readonly streamCapture: string | undefined;
  /** Host-agent side: the xl receivers this driver started, by the domid of their domain. */
  private readonly receivers = new Map<number, XlReceiver>();
  /** Page-streamer side: the streams into domains an xl receiver restores, by domid. */
  private readonly feeds = new Map<number, Promise<XlRestoreFeed>>();

  constructor(
    private readonly native: NativeXenInterface,
    private readonly watches: WatchRegistry,
    opts: XenDriverOptions = {},
  ) {
    this.hostName = opts.hostName ?? hostname();
    this.xl = opts.xl === undefined ? findOnPath('xl') : opts.xl;
    this.receiveDir = opts.xlReceiveDir ?? xlReceiveDir();
    this.streamCapture = opts.xlStreamCapture ?? (process.env.FERRY_XL_STREAM_CAPTURE || undefined);
  }

  async hostInfo(): Promise<HostInfo> {
    const h = await this.call(() => this.native.hostInfo());
    return {
      name: this.hostName,
      driver: 'xen',
      xenVersion: { major: h.xenMajor, minor: h.xenMinor },
      totalPages: h.totalPages,
      // Claimed (outstanding) pages are promised to a domain being built.
      freePages: Math.max(0, h.freePages - h.outstandingPages),
    };
  }

  async listDomains(): Promise<DomainInfo[]> {
    const records = await this.call(() => this.native.domainList());
    const infos = await Promise.all(
      records
        .filter((r) => !isDying(r))
        .map((r) =>
          this.describe(r).catch((err: unknown) => {
            // A domain destroyed while we were asking about it is simply no longer listed.
            if (err instanceof HypervisorError && err.code === 'ESRCH') return null;
            throw err;
          }),
        ),
    );
    return infos.filter((d): d is DomainInfo => d !== null);
  }

  async domainInfo(domid: number): Promise<DomainInfo> {
    return this.describe(await this.record(domid));
  }

  async createDomain(spec: DomainSpec): Promise<number> {
    throw new HypervisorError(
      'EINVAL',
      `on a Xen host domains are created by the toolstack from a domain configuration (xl create <cfg>); ` +
        `the xen driver does not build domains (asked for ${spec.name})`,
    );
  }

  /**
   * Starts Xen's stock receiver for the domain and returns the id of the domain it created
   * ("<name>--incoming", paused, empty): see xl-receiver.ts. A second call for a name whose
   * receiver still runs returns the same domain.
   */
  async createRestoreDomain(spec: RestoreDomainSpec): Promise<number> {
    if (!this.xl) throw new HypervisorError('EINVAL', `xl is not installed: a Xen target restores domains with xl migrate-receive (asked for ${spec.name})`);
    for (const [domid, r] of this.receivers) if (r.incomingName === `${spec.name}--incoming` && !r.isFailed) return domid;
    const config = spec.xlConfig ?? synthesiseConfig({ name: spec.name, uuid: spec.uuid, vcpus: spec.vcpus, memoryPages: spec.memoryPages ?? spec.maxPages });
    const receiver = await XlReceiver.start({
      xl: this.xl,
      name: spec.name,
      config,
      maxPages: spec.maxPages,
      dir: this.receiveDir,
      ...(this.streamCapture ? { capturePath: this.streamCapture } : {}),
      ...(process.env.FERRY_XL_RECEIVE_LOG ? { xlLogPath: process.env.FERRY_XL_RECEIVE_LOG } : {}),
      verbose: process.env.FERRY_XL_VERBOSE === '1',
      findDomid: async (name) => (await this.listDomains()).find((d) => d.name === name)?.domid,
    });
    this.receivers.set(receiver.domid, receiver);
    return receiver.domid;
  }

  /** The source domain's libxl config, as `xl migrate` would send it (xl list -l). */
  async toolstackConfig(domid: number): Promise<string | null> {
    if (!this.xl) return null;
    const listing = await runXlOutput(this.xl, ['list', '-l', String(domid)]);
    return configFromXlList(listing);
  }

  /**
   * libxl's rule (libxl_dom_suspend.c): an HVM/PVH guest is suspended through control/shutdown
   * when it has PV control (HVM_PARAM_CALLBACK_IRQ set), else with the shutdown hypercall; it
   * never needs control/feature-suspend. A PV guest always goes through control/shutdown.
   */
  async suspendProblem(domid: number): Promise<string | null> {
    await this.record(domid);
    return null;
  }

  /**
   * Destroys through xl when it is installed: libxl tears down what it set up with the domain
   * (backend devices, the device model, xenstore entries). xc_domain_destroy alone would leave the
   * backends holding the domain's pages, a zombie that never disappears from the domain list.
   */
  async destroy(domid: number): Promise<void> {
    const receiver = this.receivers.get(domid);
    if (receiver) {
      this.receivers.delete(domid);
      await receiver.abort();
      try {
        await this.record(domid);
      } catch (err) {
        if (err instanceof HypervisorError && err.code === 'ESRCH') return; // xl destroyed its incoming domain
        throw err;
      }
    }
    await this.record(domid);
    if (this.xl) await runXl(this.xl, ['destroy', String(domid)]);
    else await this.call(() => this.native.destroy(domid));
    await this.call(() => this.native.xsRemove(logDirtyMarkerPath(domid)));
  }

  /** Idempotent like the emulated host's: Xen counts toolstack pauses, a second one would need a second unpause. */
  async pause(domid: number): Promise<void> {
    const record = await this.record(domid);
    const state = domainState(record.flags);
    if (state === 'shutdown') throw new HypervisorError('EBUSY', `domain ${domid} has shut down; it cannot be paused`);
    if (state === 'paused') return;
    await this.call(() => this.native.pause(domid));
  }

  async unpause(domid: number): Promise<void> {
    const receiver = this.receivers.get(domid);
    if (receiver) {
      // The commit point was recorded: xl migrate-receive gets its permission to go and starts the
      // domain. A call that timed out leaves the receiver in place, so a retry waits for the same
      // report instead of unpausing a domain xl may still be restoring.
      try {
        await receiver.permitToGo();
        this.receivers.delete(domid);
      } catch (err) {
        if (receiver.isFailed) this.receivers.delete(domid);
        throw err;
      }
      return;
    }
    const record = await this.record(domid);
    const state = domainState(record.flags);
    if (state === 'shutdown') throw new HypervisorError('EBUSY', `domain ${domid} has shut down; it cannot be unpaused`);
    if (state === 'running') return;
    await this.call(() => this.native.unpause(domid));
  }

  async suspend(domid: number, opts?: { timeoutMs?: number }): Promise<void> {
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_SUSPEND_TIMEOUT_MS;
    const record = await this.record(domid);
    if (guestType(record) !== 'pv' && domainState(record.flags) === 'running') {
      const [callbackIrq] = await this.call(() => this.native.hvmParams(domid, Uint32Array.of(HVM_PARAM_CALLBACK_IRQ)));
      if (callbackIrq === 0n) {
        // No PV control: libxl suspends such a guest with the shutdown hypercall and waits for the state.
        await this.call(() => this.native.shutdownSuspend(domid));
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const now = await this.record(domid);
          if (shutdownReason(now.flags) === 'suspend') return;
          if (domainState(now.flags) === 'shutdown') throw new HypervisorError('EBUSY', `domain ${domid} shut down (${shutdownReason(now.flags)}) instead of suspending`);
          if (Date.now() > deadline) throw new HypervisorError('ETIMEDOUT', `domain ${domid} did not suspend within ${timeoutMs} ms of the shutdown hypercall`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    return suspendHandshake(this, domid, timeoutMs);
  }

  /** Cancels a suspend as libxl does: xc_domain_resume(fast=1), then tells xenstored the domain runs again. */
  async resumeSuspended(domid: number): Promise<void> {
    const record = await this.record(domid);
    const state = domainState(record.flags);
    const reason = shutdownReason(record.flags);
    if (reason !== 'suspend') {
      throw new HypervisorError('EBUSY', `domain ${domid} is not suspended (it is ${state}${reason ? `: ${reason}` : ''})`);
    }
    await this.call(() => this.native.resume(domid, true));
    await this.call(() => this.native.xsResumeDomain(domid));
  }

  async logDirtyEnable(domid: number): Promise<void> {
    const record = await this.record(domid);
    try {
      await this.native.shadowControl(domid, ShadowOp.ENABLE_LOGDIRTY);
    } catch (err) {
      const mapped = toHypervisorError(err);
      const errno = (err as NodeJS.ErrnoException).code;
      if (errno === 'EINVAL') {
        // Xen answers EINVAL when log-dirty is already on (xen.md §1.2: the saver then turns it OFF and retries).
        throw new HypervisorError('EBUSY', `log-dirty mode is already on for domain ${domid} (or the domain cannot use it): ${mapped.message}`);
      }
      if (errno === 'EOPNOTSUPP') {
        throw new HypervisorError(
          'EINVAL',
          `this hypervisor cannot track dirty pages of domain ${domid} (a ${guestType(record).toUpperCase()} guest; ` +
            `PV log-dirty needs a hypervisor built with CONFIG_SHADOW_PAGING): ${mapped.message}`,
        );
      }
      throw mapped;
    }
    await this.call(() => this.native.xsWrite(logDirtyMarkerPath(domid), uuidOf(record)));
  }

  async logDirtyDisable(domid: number): Promise<void> {
    await this.call(() => this.native.shadowControl(domid, ShadowOp.OFF));
    await this.call(() => this.native.xsRemove(logDirtyMarkerPath(domid)));
  }

  logDirtyClean(domid: number, opts?: { final?: boolean }): Promise<DirtyBitmap> {
    return this.readDirtyBitmap(domid, ShadowOp.CLEAN, opts?.final === true);
  }

  logDirtyPeek(domid: number): Promise<DirtyBitmap> {
    return this.readDirtyBitmap(domid, ShadowOp.PEEK, false);
  }

  /** Populated pfns: those whose page type carries data (ballooned-out pfns are XTAB holes). */
  async p2m(domid: number): Promise<Uint8Array> {
    const size = await this.call(() => this.native.nrGpfns(domid));
    const bitmap = new Uint8Array(Math.ceil(size / 8));
    for (let first = 0; first < size; first += P2M_SCAN_CHUNK) {
      const count = Math.min(P2M_SCAN_CHUNK, size - first);
      const pfns = new Uint32Array(count);
      for (let i = 0; i < count; i++) pfns[i] = first + i;
      markPopulated(bitmap, first, await this.call(() => this.native.pageTypes(domid, pfns)));
    }
    return bitmap;
  }

  /** Like Xen's saver: ask the page types first and map only pages with data, so holes are never touched. */
  async mapForeignPages(domid: number, pfns: readonly number[]): Promise<ForeignPages> {
    const frames = pfnArray(pfns);
    const types = await this.call(() => this.native.pageTypes(domid, frames));
    const skip = new Uint8Array(frames.length);
    for (let i = 0; i < frames.length; i++) skip[i] = pageHasData(types[i]) ? 0 : 1;
    const buffer = this.pool.acquire();
    const data = buffer.subarray(0, frames.length * PAGE_SIZE);
    let errors: Int32Array;
    try {
      errors = await this.call(() => this.native.readPages(domid, frames, skip, data));
    } catch (err) {
      this.pool.release(buffer);
      throw err;
    }
    let mapped = true;
    return {
      pfns,
      data,
      errors,
      unmap: () => {
        // The pages were copied out and the foreign mapping already released; only the buffer is left.
        if (!mapped) return;
        mapped = false;
        this.pool.release(buffer);
      },
    };
  }

  async writePages(domid: number, pfns: readonly number[], data: Uint8Array): Promise<void> {
    const feed = await this.feedFor(domid);
    if (feed) {
      pfnArray(pfns);
      if (data.byteLength !== pfns.length * PAGE_SIZE) {
        throw new HypervisorError('EINVAL', `writePages: ${pfns.length} pages need ${pfns.length * PAGE_SIZE} bytes of data, got ${data.byteLength}`);
      }
      return this.feedCall(domid, () => feed.writePages(pfns, data));
    }
    const frames = pfnArray(pfns);
    if (data.byteLength !== frames.length * PAGE_SIZE) {
      throw new HypervisorError('EINVAL', `writePages: ${frames.length} pages need ${frames.length * PAGE_SIZE} bytes of data, got ${data.byteLength}`);
    }
    const state = domainState((await this.record(domid)).flags);
    if (state !== 'paused') {
      throw new HypervisorError('EBUSY', `writePages: domain ${domid} is ${state === 'running' ? 'running' : 'shut down'}; pages are written into a paused domain only`);
    }
    const types = await this.call(() => this.native.pageTypes(domid, frames));
    const populate = frames.filter((_, i) => types[i] === PageType.XTAB);
    await this.call(() => this.native.writePages(domid, frames, populate, data));
  }

  async getVcpuContext(domid: number): Promise<Uint8Array> {
    const record = await this.record(domid);
    const type = guestType(record);
    if (type === 'pv') {
      throw new HypervisorError('EINVAL', `domain ${domid} is a PV guest; the xen driver saves PVH and HVM guests only (PV needs page-table normalisation)`);
    }
    if (domainState(record.flags) === 'running') {
      throw new HypervisorError('EBUSY', `domain ${domid} is running; pause or suspend it before reading its vCPU context`);
    }
    const indices = Uint32Array.from(RESTORE_HVM_PARAMS);
    const [host, p2mSize, tsc, values, hvmContext, policy] = await Promise.all([
      this.call(() => this.native.hostInfo()),
      this.call(() => this.native.nrGpfns(domid)),
      this.call(() => this.native.tscInfo(domid)),
      this.call(() => this.native.hvmParams(domid, indices)),
      this.call(() => this.native.hvmContext(domid)),
      this.call(() => this.native.cpuPolicy(domid)),
    ]);
    return packVcpuContext({
      domain: { guestType: type, vcpus: vcpuCount(record.maxVcpuId), p2mSize, xenMajor: host.xenMajor, xenMinor: host.xenMinor },
      tsc,
      // Xen's saver records only the params that are set.
      hvmParams: [...indices].map((index, i) => ({ index, value: values[i] })).filter((p) => p.value !== 0n),
      hvmContext,
      cpuidPolicy: policy.leaves,
      msrPolicy: policy.msrs,
    });
  }

  /** Applies a context in the order Xen's restore does: CPU policy, TSC, HVM params, HVM context. */
  async setVcpuContext(domid: number, context: Uint8Array): Promise<void> {
    const feed = await this.feedFor(domid);
    if (feed) {
      try {
        return await this.feedCall(domid, () => feed.finish(context));
      } finally {
        this.feeds.delete(domid);
      }
    }
    const ctx = unpackVcpuContext(context);
    const record = await this.record(domid);
    if (domainState(record.flags) !== 'paused') {
      throw new HypervisorError('EBUSY', `domain ${domid} is not paused; a vCPU context is set on a paused domain only`);
    }
    const type = guestType(record);
    if (type !== ctx.domain.guestType) {
      throw new HypervisorError('EINVAL', `the context is of a ${ctx.domain.guestType.toUpperCase()} guest, domain ${domid} is ${type.toUpperCase()}`);
    }
    if (ctx.cpuidPolicy.byteLength > 0 || ctx.msrPolicy.byteLength > 0) {
      // Xen fixes a domain's CPU policy once it has run (EEXIST): re-applying the same one is a no-op.
      const current = await this.call(() => this.native.cpuPolicy(domid));
      if (!Buffer.from(ctx.cpuidPolicy).equals(current.leaves) || !Buffer.from(ctx.msrPolicy).equals(current.msrs)) {
        await this.call(() => this.native.setCpuPolicy(domid, ctx.cpuidPolicy, ctx.msrPolicy));
      }
    }
    const { mode, elapsedNsec, khz, incarnation } = ctx.tsc;
    await this.call(() => this.native.setTscInfo(domid, mode, elapsedNsec, khz, incarnation));
    if (ctx.hvmParams.length > 0) {
      const indices = Uint32Array.from(ctx.hvmParams.map((p) => p.index));
      const values = BigUint64Array.from(ctx.hvmParams.map((p) => p.value));
      await this.call(() => this.native.setHvmParams(domid, indices, values));
    }
    await this.call(() => this.native.setHvmContext(domid, ctx.hvmContext));
  }

  xenstoreRead(path: string): Promise<string | null> {
    return this.call(() => this.native.xsRead(path));
  }

  xenstoreWrite(path: string, value: string): Promise<void> {
    return this.call(() => this.native.xsWrite(path, value));
  }

  async xenstoreWatch(path: string, onChange: (path: string) => void): Promise<XenstoreWatch> {
    const token = this.watches.add(path, onChange);
    try {
      await this.call(() => this.native.xsWatch(path, token));
    } catch (err) {
      this.watches.remove(token);
      throw err;
    }
    let open = true;
    return {
      close: async () => {
        if (!open) return;
        open = false;
        this.watches.remove(token);
        await this.call(() => this.native.xsUnwatch(path, token));
      },
    };
  }

  async close(): Promise<void> {
    for (const r of this.receivers.values()) await r.abort().catch(() => undefined);
    this.receivers.clear();
    for (const f of this.feeds.values()) void f.then((feed) => feed.close()).catch(() => undefined);
    this.feeds.clear();
    this.native.close();
  }

  /** The stream into a domain that an xl receiver on this host restores; null for any other domain. */
  private async feedFor(domid: number): Promise<XlRestoreFeed | null> {
    const open = this.feeds.get(domid);
    if (open) {
      const feed = await open;
      if (!feed.isClosed) return feed;
      this.feeds.delete(domid);
    }
    const meta = readXlReceiveMeta(this.receiveDir, domid);
    if (!meta) return null;
    const opening = this.hostInfo().then((h) => XlRestoreFeed.open(meta, h.xenVersion));
    this.feeds.set(domid, opening);
    try {
      return await opening;
    } catch (err) {
      this.feeds.delete(domid);
      throw new HypervisorError('EIO', `the xl receiver of domain ${domid} cannot be reached: ${(err as Error).message}`);
    }
  }

  private async feedCall(domid: number, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof HypervisorError) throw err;
      throw new HypervisorError('EIO', `writing Xen's stream into domain ${domid}: ${(err as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------------------------

  /** The domain's getdomaininfo record; ESRCH for an unknown or dying domain. */
  private async record(domid: number): Promise<RawDomainRecord> {
    if (!Number.isInteger(domid) || domid < 0) throw new HypervisorError('EINVAL', `domid ${domid} is not a domain id`);
    const record = await this.call(() => this.native.domainInfo(domid));
    if (isDying(record)) throw new HypervisorError('ESRCH', `domain ${domid} is being destroyed`);
    return record;
  }

  private async describe(record: RawDomainRecord): Promise<DomainInfo> {
    const domid = record.domid;
    const [name, p2mSize, marker] = await Promise.all([
      this.call(() => this.native.xsRead(`/local/domain/${domid}/name`)),
      this.call(() => this.native.nrGpfns(domid)),
      this.call(() => this.native.xsRead(logDirtyMarkerPath(domid))),
    ]);
    // A domain the xl receiver restores grows its p2m as the stream populates it: it reports the
    // source's p2m size, the bound every pfn it receives must respect.
    const receiving = readXlReceiveMeta(this.receiveDir, domid);
    return toDomainInfo(record, { name, p2mSize: receiving ? Math.max(p2mSize, receiving.maxPages) : p2mSize, logDirty: markerSaysEnabled(marker, uuidOf(record)) });
  }

  private async readDirtyBitmap(domid: number, op: number, final: boolean): Promise<DirtyBitmap> {
    const [record, marker] = await Promise.all([this.record(domid), this.call(() => this.native.xsRead(logDirtyMarkerPath(domid)))]);
    if (!markerSaysEnabled(marker, uuidOf(record))) {
      throw new HypervisorError('EBUSY', `log-dirty is not enabled for domain ${domid}`);
    }
    if (final && domainState(record.flags) === 'running') {
      throw new HypervisorError('EBUSY', `FINAL CLEAN needs domain ${domid} paused or suspended; it is running`);
    }
    const r = await this.call(() => this.native.logDirtyControl(domid, op, final));
    return { bitmap: pfnBitmapFromXen(r.bitmap, r.pages), stats: { dirtyCount: r.dirtyCount, faultCount: r.faultCount } };
  }

  /** Runs a native call, turning its errors (thrown or rejected) into HypervisorErrors. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toHypervisorError(err);
    }
  }
}

function uuidOf(record: RawDomainRecord): string {
  return uuidFromHandle(record.handle);
}

/** A batch of pfns as the addon takes them; E2BIG past MAX_BATCH_PAGES, EINVAL for a non-pfn. */
export function pfnArray(pfns: readonly number[]): Uint32Array {
  if (pfns.length > MAX_BATCH_PAGES) {
    throw new HypervisorError('E2BIG', `a batch of ${pfns.length} pages exceeds the limit of ${MAX_BATCH_PAGES}`);
  }
  const out = new Uint32Array(pfns.length);
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (!Number.isInteger(pfn) || pfn < 0 || pfn > 0xffffffff) throw new HypervisorError('EINVAL', `${pfn} is not a pfn`);
    out[i] = pfn;
  }
  return out;
}

function findOnPath(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/lib/xen-4.17/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function runXlOutput(xl: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(xl, args, { timeout: XL_TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(String(stdout));
      const why = String(stderr).trim() || err.message;
      reject(new HypervisorError(err.killed ? 'ETIMEDOUT' : 'EIO', `${xl} ${args.join(' ')} failed: ${why}`));
    });
  });
}

function runXl(xl: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(xl, args, { timeout: XL_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const why = String(stderr).trim() || err.message;
      reject(new HypervisorError(err.killed ? 'ETIMEDOUT' : 'EIO', `${xl} ${args.join(' ')} failed: ${why}`));
    });
  });
}
