// The emulated Xen host: domains with real memory, host capacity, xenstore, and every hypercall the
// driver makes. It throws HypervisorError with Xen-like codes for bad input; the hypercall server
// forwards them to the caller unchanged.

import { randomUUID } from 'node:crypto';
import {
  DomainMemory,
  HypervisorError,
  domainMemoryNames,
  pagesToKiB,
  type DomainInfo,
  type DomainMemoryNames,
  type DomainSpec,
  type HostInfo,
  type LogDirtyStats,
  type RestoreDomainSpec,
  type WorkloadSpec,
} from '@ferry/hypervisor';
import type { Logger } from 'pino';
import { EmuDomain } from './emu-domain';
import { HostMemory } from './host-memory';
import { Xenstore } from './xenstore';

const RELEASE_DOMAIN = '@releaseDomain';
const INTRODUCE_DOMAIN = '@introduceDomain';
const VALID_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const WORKLOAD_KINDS: readonly WorkloadSpec['kind'][] = ['kv', 'web', 'db', 'compile', 'memtest', 'idle'];
const MAX_VCPUS = 128;
/** The guest program domains run unless the host is told otherwise. */
export const DEFAULT_KERNEL_MODULE = '@ferry/guest';
/** What a domain created without a workload runs. */
const DEFAULT_WORKLOAD: WorkloadSpec = { kind: 'idle', seed: 1, freeFraction: 0.5 };

export interface EmuHostOptions {
  name: string;
  capacityPages: number;
  /** Module exporting createKernel(): the guest program every domain of this host runs. */
  kernelModule: string;
  logger: Logger;
  /** Used in shared memory object names (defaults to this process's pid). */
  pid?: number;
}

export class EmuHost {
  readonly xenstore: Xenstore;
  readonly hostMemory: HostMemory;
  private readonly domains = new Map<number, EmuDomain>();
  /** Names taken, including domains still being created. */
  private readonly names = new Set<string>();
  private nextDomid = 1;
  private readonly pid: number;

  constructor(private readonly opts: EmuHostOptions) {
    this.pid = opts.pid ?? process.pid;
    this.hostMemory = HostMemory.create(opts.capacityPages);
    this.xenstore = new Xenstore((err, path) =>
      opts.logger.error({ path, err: err instanceof Error ? err.message : String(err) }, 'xenstore watcher failed'),
    );
    this.xenstore.write('/local/domain/0/name', 'Domain-0');
    this.xenstore.write('/local/domain/0/domid', '0');
  }

  get name(): string {
    return this.opts.name;
  }

  hostInfo(): HostInfo {
    return {
      name: this.opts.name,
      driver: 'emulated',
      xenVersion: { major: 4, minor: 17 },
      totalPages: this.hostMemory.totalPages,
      freePages: this.hostMemory.freePages,
    };
  }

  listDomains(): DomainInfo[] {
    return [...this.domains.values()].map((d) => d.info());
  }

  domainInfo(domid: unknown): DomainInfo {
    return this.domain(domid).info();
  }

  /** xl create: a domain with all of maxPages populated, running its workload. */
  async createDomain(spec: DomainSpec): Promise<number> {
    const { name, maxPages, vcpus } = this.checkSpec(spec);
    const workload = checkWorkload(spec.workload);
    this.checkFits(maxPages, name);
    this.names.add(name);
    try {
      this.hostMemory.reserve(maxPages, `domain ${name} (${maxPages} pages)`);
    } catch (err) {
      this.names.delete(name);
      throw err;
    }
    const domid = this.nextDomid++;
    let memory: DomainMemory | null = null;
    let domain: EmuDomain | null = null;
    try {
      memory = DomainMemory.create(this.memoryNames(domid), maxPages, domid);
      populateAll(memory);
      domain = this.register(domid, name, vcpus, memory);
      await domain.boot(workload);
      this.opts.logger.info({ domid, domainName: name, maxPages, workload }, 'domain created');
      return domid;
    } catch (err) {
      if (domain) {
        await this.destroy(domid);
      } else {
        this.hostMemory.release(memory ? memory.nrPages : maxPages);
        memory?.close();
        memory?.unlink();
        this.names.delete(name);
      }
      throw err;
    }
  }

  /** An empty, paused domain for a restore to populate (libxl_domain_create_restore). */
  createRestoreDomain(spec: RestoreDomainSpec): number {
    const { name, maxPages, vcpus } = this.checkSpec(spec);
    this.checkFits(maxPages, name);
    const domid = this.nextDomid++;
    const memory = DomainMemory.create(this.memoryNames(domid), maxPages, domid);
    this.names.add(name);
    this.register(domid, name, vcpus, memory).prestartVcpu();
    this.opts.logger.info({ domid, domainName: name, maxPages }, 'restore domain created');
    return domid;
  }

  async destroy(domid: unknown): Promise<void> {
    const domain = this.domain(domid);
    this.domains.delete(domain.domid);
    try {
      await domain.destroy();
    } finally {
      this.hostMemory.release(domain.memory.nrPages);
      domain.memory.close();
      domain.memory.unlink();
      this.names.delete(domain.name);
      this.xenstore.remove(`/local/domain/${domain.domid}`);
      this.xenstore.fireSpecial(RELEASE_DOMAIN);
      this.opts.logger.info({ domid: domain.domid, domainName: domain.name }, 'domain destroyed');
    }
  }

  pause(domid: unknown): Promise<void> {
    return this.domain(domid).pause();
  }

  unpause(domid: unknown): Promise<void> {
    return this.domain(domid).unpause();
  }

  resumeSuspended(domid: unknown): Promise<void> {
    return this.domain(domid).resumeSuspended();
  }

  logDirty(
    domid: unknown,
    op: unknown,
    final: unknown,
  ): { stats?: LogDirtyStats; bitmap?: Uint8Array } {
    const domain = this.domain(domid);
    switch (op) {
      case 'enable':
        domain.logDirtyEnable();
        return {};
      case 'disable':
        domain.logDirtyDisable();
        return {};
      case 'clean':
      case 'peek': {
        if (final !== undefined && typeof final !== 'boolean') throw new HypervisorError('EINVAL', 'final must be a boolean');
        if (op === 'peek' && final) throw new HypervisorError('EINVAL', 'FINAL applies to CLEAN, not PEEK');
        return domain.logDirtyRead(op === 'clean', final === true);
      }
      default:
        throw new HypervisorError('EINVAL', `unknown log-dirty operation ${JSON.stringify(op)}`);
    }
  }

  p2m(domid: unknown): Uint8Array {
    return this.domain(domid).memory.p2mBitmap();
  }

  memoryObjects(domid: unknown): { names: DomainMemoryNames; maxPages: number } {
    const domain = this.domain(domid);
    return { names: domain.memory.names, maxPages: domain.maxPages };
  }

  populate(domid: unknown, pfns: Uint32Array): number {
    const domain = this.domain(domid);
    if (pfns.length > 1024) throw new HypervisorError('E2BIG', `a batch of ${pfns.length} pages exceeds the limit of 1024`);
    return domain.populateForRestore(pfns);
  }

  getVcpuContext(domid: unknown): Promise<Uint8Array> {
    return this.domain(domid).getVcpuContext();
  }

  setVcpuContext(domid: unknown, context: Uint8Array): Promise<void> {
    return this.domain(domid).setVcpuContext(context);
  }

  /** Destroys every domain (host shutdown). */
  async destroyAll(): Promise<void> {
    const domids = [...this.domains.keys()];
    const results = await Promise.allSettled(domids.map((domid) => this.destroy(domid)));
    for (const r of results) {
      if (r.status === 'rejected') this.opts.logger.error({ err: String(r.reason) }, 'destroying a domain at shutdown failed');
    }
  }

  private register(domid: number, name: string, vcpus: number, memory: DomainMemory): EmuDomain {
    const domain = new EmuDomain(domid, name, randomUUID(), vcpus, memory, {
      hostMemory: this.hostMemory,
      xenstore: this.xenstore,
      logger: this.opts.logger,
      kernelModule: this.opts.kernelModule,
      onShutdown: (d) => {
        this.opts.logger.info({ domid: d.domid, reason: d.info().shutdownReason }, 'domain shut down');
        this.xenstore.fireSpecial(RELEASE_DOMAIN);
      },
    });
    this.domains.set(domid, domain);
    const home = `/local/domain/${domid}`;
    const kib = String(pagesToKiB(memory.maxPages));
    this.xenstore.write(`${home}/name`, name);
    this.xenstore.write(`${home}/domid`, String(domid));
    this.xenstore.write(`${home}/vm`, `/vm/${domain.uuid}`);
    this.xenstore.write(`${home}/memory/static-max`, kib);
    this.xenstore.write(`${home}/memory/target`, kib);
    this.xenstore.write(`${home}/control`, '');
    this.xenstore.write(`${home}/data`, '');
    this.xenstore.fireSpecial(INTRODUCE_DOMAIN);
    return domain;
  }

  private domain(domid: unknown): EmuDomain {
    if (typeof domid !== 'number' || !Number.isInteger(domid)) {
      throw new HypervisorError('EINVAL', `domid must be an integer, got ${JSON.stringify(domid)}`);
    }
    const domain = this.domains.get(domid);
    if (!domain) throw new HypervisorError('ESRCH', `no domain ${domid} on host ${this.opts.name}`);
    return domain;
  }

  private checkSpec(spec: Partial<DomainSpec> | undefined): { name: string; maxPages: number; vcpus: number } {
    if (typeof spec !== 'object' || spec === null) throw new HypervisorError('EINVAL', 'a domain spec is required');
    const { name, maxPages } = spec;
    const vcpus = spec.vcpus ?? 1;
    if (typeof name !== 'string' || !VALID_NAME.test(name)) {
      throw new HypervisorError('EINVAL', `domain name ${JSON.stringify(name)} must be 1-64 characters of [A-Za-z0-9_.-]`);
    }
    if (typeof maxPages !== 'number' || !Number.isInteger(maxPages) || maxPages < 1) {
      throw new HypervisorError('EINVAL', `maxPages must be a positive integer, got ${JSON.stringify(maxPages)}`);
    }
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) {
      throw new HypervisorError('EINVAL', `vcpus must be 1..${MAX_VCPUS}, got ${JSON.stringify(vcpus)}`);
    }
    return { name, maxPages, vcpus };
  }

  private checkFits(maxPages: number, name: string): void {
    if (this.names.has(name)) throw new HypervisorError('EEXIST', `a domain named ${name} already exists on host ${this.opts.name}`);
    if (maxPages > this.hostMemory.totalPages) {
      throw new HypervisorError(
        'ENOMEM',
        `domain ${name} (${maxPages} pages) is larger than host ${this.opts.name} (${this.hostMemory.totalPages} pages)`,
      );
    }
  }

  private memoryNames(domid: number): DomainMemoryNames {
    return domainMemoryNames(this.opts.name, this.pid, domid);
  }
}

/** Sets every p2m bit of a new domain (its initial allocation is static-max). */
function populateAll(memory: DomainMemory): void {
  const fullWords = Math.floor(memory.maxPages / 32);
  memory.p2m.fill(-1, 0, fullWords);
  const rest = memory.maxPages % 32;
  if (rest > 0) memory.p2m[fullWords] = (1 << rest) - 1;
  memory.addNrPages(memory.maxPages);
}

function checkWorkload(workload: WorkloadSpec | undefined): WorkloadSpec {
  if (workload === undefined) return DEFAULT_WORKLOAD;
  if (typeof workload !== 'object' || workload === null) throw new HypervisorError('EINVAL', 'workload must be an object');
  if (!WORKLOAD_KINDS.includes(workload.kind)) {
    throw new HypervisorError('EINVAL', `workload kind ${JSON.stringify(workload.kind)} is not one of ${WORKLOAD_KINDS.join(', ')}`);
  }
  if (!Number.isInteger(workload.seed)) throw new HypervisorError('EINVAL', 'workload seed must be an integer');
  if (typeof workload.freeFraction !== 'number' || !(workload.freeFraction >= 0 && workload.freeFraction <= 1)) {
    throw new HypervisorError('EINVAL', `workload freeFraction must be in [0, 1], got ${JSON.stringify(workload.freeFraction)}`);
  }
  return workload;
}
