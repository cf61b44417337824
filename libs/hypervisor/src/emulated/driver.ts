// The emulated driver: HypervisorDriver over an emulated Xen host's hypercall socket. Control
// operations are hypercalls; page contents go through the domain's shared memory, which this
// process maps once per domain (as dom0 maps guest frames with xenforeignmemory_map).

import {
  HypervisorError,
  MAX_BATCH_PAGES,
  PAGE_SIZE,
  type DirtyBitmap,
  type DomainInfo,
  type DomainSpec,
  type ForeignPages,
  type HostInfo,
  type HypervisorDriver,
  type RestoreDomainSpec,
  type XenstoreWatch,
} from '../driver';
import { DomainMemory } from './domain-memory';
import { ForeignPagePool } from './foreign-page-pool';
import { HypercallClient } from './hypercall-client';
import { DomainStateCode } from './memory-layout';
import { encodePfns } from './protocol';
import { DEFAULT_SUSPEND_TIMEOUT_MS, suspendHandshake } from './suspend-handshake';

const ENOENT = 2;

export async function connectEmulatedDriver(socketPath: string): Promise<EmulatedDriver> {
  return new EmulatedDriver(await HypercallClient.connect(socketPath));
}

export class EmulatedDriver implements HypervisorDriver {
  readonly kind = 'emulated' as const;
  /** Mapped domain memory, by domid (domids are never reused by an emulated host). */
  private readonly memories = new Map<number, Promise<DomainMemory>>();
  /** The mappings that have been made, to find those of domains destroyed by another process. */
  private readonly mapped = new Map<number, DomainMemory>();
  /**
   * Another process (the host-agent) destroys domains this driver has mapped; the host marks their
   * memory DESTROYED, and ids are never reused, so without a sweep those mappings (gigabytes of
   * shared memory the host has unlinked) would stay alive as long as this process.
   */
  private readonly sweeper = setInterval(() => this.sweepDestroyed(), 2000).unref();
  private readonly pool = new ForeignPagePool();

  constructor(private readonly client: HypercallClient) {}

  get socketPath(): string {
    return this.client.socketPath;
  }

  async hostInfo(): Promise<HostInfo> {
    return (await this.client.call('hostInfo', {})).result;
  }

  async listDomains(): Promise<DomainInfo[]> {
    return (await this.client.call('listDomains', {})).result;
  }

  async domainInfo(domid: number): Promise<DomainInfo> {
    return (await this.client.call('domainInfo', { domid })).result;
  }

  async createDomain(spec: DomainSpec): Promise<number> {
    return (await this.client.call('createDomain', { spec })).result.domid;
  }

  async createRestoreDomain(spec: RestoreDomainSpec): Promise<number> {
    return (await this.client.call('createRestoreDomain', { spec })).result.domid;
  }

  async destroy(domid: number): Promise<void> {
    try {
      await this.client.call('destroy', { domid });
    } finally {
      await this.forgetMemory(domid);
    }
  }

  async pause(domid: number): Promise<void> {
    await this.client.call('pause', { domid });
  }

  async unpause(domid: number): Promise<void> {
    await this.client.call('unpause', { domid });
  }

  suspend(domid: number, opts?: { timeoutMs?: number }): Promise<void> {
    return suspendHandshake(this, domid, opts?.timeoutMs ?? DEFAULT_SUSPEND_TIMEOUT_MS);
  }

  async resumeSuspended(domid: number): Promise<void> {
    await this.client.call('resumeSuspended', { domid });
  }

  async logDirtyEnable(domid: number): Promise<void> {
    await this.client.call('logDirty', { domid, op: 'enable' });
  }

  async logDirtyDisable(domid: number): Promise<void> {
    await this.client.call('logDirty', { domid, op: 'disable' });
  }

  async logDirtyClean(domid: number, opts?: { final?: boolean }): Promise<DirtyBitmap> {
    const reply = await this.client.call('logDirty', { domid, op: 'clean', final: opts?.final === true });
    return toDirtyBitmap(reply.result.stats, reply.payload);
  }

  async logDirtyPeek(domid: number): Promise<DirtyBitmap> {
    const reply = await this.client.call('logDirty', { domid, op: 'peek' });
    return toDirtyBitmap(reply.result.stats, reply.payload);
  }

  async p2m(domid: number): Promise<Uint8Array> {
    const reply = await this.client.call('p2m', { domid });
    return new Uint8Array(reply.payload ?? new Uint8Array(0));
  }

  async mapForeignPages(domid: number, pfns: readonly number[]): Promise<ForeignPages> {
    checkBatchSize(pfns.length);
    const memory = await this.liveMemory(domid);
    checkPfns(pfns, memory.maxPages, domid);
    const buffer = this.pool.acquire();
    const data = buffer.subarray(0, pfns.length * PAGE_SIZE);
    const errors = new Int32Array(pfns.length);
    // One read per run of consecutive populated pfns (see DomainMemory.readPages).
    for (let i = 0; i < pfns.length; ) {
      if (!memory.isPopulated(pfns[i])) {
        data.fill(0, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        errors[i] = -ENOENT;
        i++;
        continue;
      }
      const end = runEnd(pfns, i, (pfn) => memory.isPopulated(pfn));
      memory.readPages(pfns[i], end - i, data, i * PAGE_SIZE);
      i = end;
    }
    let mapped = true;
    return {
      pfns,
      data,
      errors,
      unmap: () => {
        if (!mapped) return;
        mapped = false;
        this.pool.release(buffer);
      },
    };
  }

  async writePages(domid: number, pfns: readonly number[], data: Uint8Array): Promise<void> {
    checkBatchSize(pfns.length);
    if (data.byteLength !== pfns.length * PAGE_SIZE) {
      throw new HypervisorError(
        'EINVAL',
        `writePages: ${pfns.length} pages need ${pfns.length * PAGE_SIZE} bytes of data, got ${data.byteLength}`,
      );
    }
    const memory = await this.liveMemory(domid);
    checkPfns(pfns, memory.maxPages, domid);
    const state = memory.state;
    if (state !== DomainStateCode.PAUSED) {
      throw new HypervisorError(
        'EBUSY',
        `writePages: domain ${domid} is ${state === DomainStateCode.RUNNING ? 'running' : 'shut down'}; pages are written into a paused domain only`,
      );
    }
    let missing: number[] | null = null;
    for (let i = 0; i < pfns.length; i++) {
      if (!memory.isPopulated(pfns[i])) (missing ??= []).push(pfns[i]);
    }
    // The host populates (and charges host capacity for) pages that are not there yet.
    if (missing) await this.client.call('populate', { domid }, encodePfns(missing));
    for (let i = 0; i < pfns.length; ) {
      const end = runEnd(pfns, i, () => true);
      memory.writePages(pfns[i], end - i, data, i * PAGE_SIZE);
      i = end;
    }
  }

  async getVcpuContext(domid: number): Promise<Uint8Array> {
    const reply = await this.client.call('getVcpuContext', { domid });
    return new Uint8Array(reply.payload ?? new Uint8Array(0));
  }

  async setVcpuContext(domid: number, context: Uint8Array): Promise<void> {
    await this.client.call('setVcpuContext', { domid }, context);
  }

  async xenstoreRead(path: string): Promise<string | null> {
    return (await this.client.call('xsRead', { path })).result.value;
  }

  async xenstoreWrite(path: string, value: string): Promise<void> {
    await this.client.call('xsWrite', { path, value });
  }

  async xenstoreWatch(path: string, onChange: (path: string) => void): Promise<XenstoreWatch> {
    const watchId = await this.client.watch(path, onChange);
    return { close: () => this.client.unwatch(watchId) };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.client.close();
    const domids = [...this.memories.keys()];
    await Promise.all(domids.map((domid) => this.forgetMemory(domid)));
  }

  /** The domain's mapped memory, mapping it on first use; ESRCH once the domain is destroyed. */
  private async liveMemory(domid: number): Promise<DomainMemory> {
    this.sweepDestroyed();
    let mapping = this.memories.get(domid);
    if (!mapping) {
      mapping = this.client.call('memoryObjects', { domid }).then(({ result }) => {
        const memory = DomainMemory.open(result.names);
        this.mapped.set(domid, memory);
        return memory;
      });
      this.memories.set(domid, mapping);
      mapping.catch(() => this.memories.delete(domid));
    }
    const memory = await mapping;
    if (memory.state === DomainStateCode.DESTROYED) {
      await this.forgetMemory(domid);
      throw new HypervisorError('ESRCH', `domain ${domid} has been destroyed`);
    }
    return memory;
  }

  private sweepDestroyed(): void {
    for (const [domid, memory] of this.mapped) {
      if (memory.state === DomainStateCode.DESTROYED) void this.forgetMemory(domid);
    }
  }

  private async forgetMemory(domid: number): Promise<void> {
    const mapping = this.memories.get(domid);
    this.mapped.delete(domid);
    if (!mapping) return;
    this.memories.delete(domid);
    try {
      (await mapping).close();
    } catch {
      // It never got mapped; nothing to release.
    }
  }
}

function checkBatchSize(count: number): void {
  if (count > MAX_BATCH_PAGES) {
    throw new HypervisorError('E2BIG', `a batch of ${count} pages exceeds the limit of ${MAX_BATCH_PAGES}`);
  }
}

function checkPfns(pfns: readonly number[], maxPages: number, domid: number): void {
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= maxPages) {
      throw new HypervisorError('EINVAL', `pfn ${pfn} is outside domain ${domid}'s p2m [0, ${maxPages})`);
    }
  }
}

function toDirtyBitmap(stats: DirtyBitmap['stats'] | undefined, payload: Buffer | null): DirtyBitmap {
  return {
    bitmap: new Uint8Array(payload ?? new Uint8Array(0)),
    stats: stats ?? { dirtyCount: 0, faultCount: 0 },
  };
}

/** The end (exclusive) of the run of consecutive pfns from index `start` that all pass `include`. */
function runEnd(pfns: readonly number[], start: number, include: (pfn: number) => boolean): number {
  let end = start + 1;
  while (end < pfns.length && pfns[end] === pfns[end - 1] + 1 && include(pfns[end])) end++;
  return end;
}
