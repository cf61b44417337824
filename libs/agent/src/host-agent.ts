// The host agent: domain inventory and lifecycle of one host over its hypervisor driver, with the
// fencing of migration commands (fencing.ts) and pre-flight (preflight.ts). One method per
// HostAgentService RPC, taking and returning the proto messages, so the gRPC adapter in
// services/host-agent only wires them up. Errors are FerryErrors (or HypervisorErrors, which the
// runtime maps to statuses); nothing here knows about grpc-js beyond status codes.

import { status } from '@grpc/grpc-js';
import {
  DEFAULT_SUSPEND_TIMEOUT_MS,
  HypervisorError,
  xsPaths,
  type DomainInfo,
  type HostInfo,
  type HypervisorDriver,
} from '@ferry/hypervisor';
import {
  MigrationRole,
  type CheckMigrationRequest,
  type CheckMigrationResponse,
  type CreateRestoreDomainRequest,
  type CreateRestoreDomainResponse,
  type DestroyDomainRequest,
  type DestroyDomainResponse,
  type Domain,
  type GetDomainRequest,
  type GetDomainResponse,
  type GetHostInfoResponse,
  type GetVcpuContextRequest,
  type GetVcpuContextResponse,
  type Host,
  type HostAgentServiceCreateDomainRequest,
  type HostAgentServiceCreateDomainResponse,
  type HostAgentServiceListDomainsResponse,
  type PauseDomainRequest,
  type PauseDomainResponse,
  type ReleaseDomainRequest,
  type ReleaseDomainResponse,
  type ResumeDomainRequest,
  type ResumeDomainResponse,
  type SetVcpuContextRequest,
  type SetVcpuContextResponse,
  type SuspendDomainRequest,
  type SuspendDomainResponse,
  type UnpauseDomainRequest,
  type UnpauseDomainResponse,
} from '@ferry/proto';
import { FerryError, alreadyExists, invalidArgument, notFound, type Logger } from '@ferry/runtime';
import type { HostRecord } from '@ferry/cluster';
import { describeDomain, domainOf, isUuid, readDomainKeys, vmPath, type DomainKeys } from './domain-view';
import { checkDomainName, checkVcpus, toDriverDomainSpec } from './domain-spec';
import { FenceTable, requireFence, type FenceLike } from './fencing';
import { describeHost, toHostRecord, type HostIdentity } from './host-identity';
import { sourceReasons, targetReasons } from './preflight';

/** The longest suspend handshake a caller may ask for. */
export const MAX_SUSPEND_TIMEOUT_MS = 10 * 60_000;
/** Largest vCPU context accepted (the emulated guest's is a few KiB). */
const MAX_VCPU_CONTEXT_BYTES = 1 << 20;

export interface HostAgentOptions {
  driver: HypervisorDriver;
  identity: HostIdentity;
  logger: Logger;
  /** Suspend handshake timeout when a request gives none (default 60 s, as libxl). */
  defaultSuspendTimeoutMs?: number;
}

export class HostAgent {
  private readonly driver: HypervisorDriver;
  private readonly identity: HostIdentity;
  private readonly logger: Logger;
  private readonly fences = new FenceTable<number>((domid) => `domain ${domid}`);
  /** CreateRestoreDomain calls in progress, per migration, so a retry joins the first call. */
  private readonly restoring = new Map<string, Promise<CreateRestoreDomainResponse>>();

  constructor(private readonly opts: HostAgentOptions) {
    this.driver = opts.driver;
    this.identity = { ...opts.identity, endpoints: { ...opts.identity.endpoints } };
    this.logger = opts.logger;
  }

  get hostName(): string {
    return this.identity.name;
  }

  /** Records the address the agent's own server listens on (known only once it is bound). */
  setOwnAddress(address: string): void {
    this.identity.endpoints.hostAgent = address;
  }

  async host(): Promise<Host> {
    return describeHost(this.identity, await this.driver.hostInfo());
  }

  /** The host's entry for the cluster registry (refreshed at every heartbeat). */
  async hostRecord(): Promise<Omit<HostRecord, 'heartbeatAt'>> {
    return toHostRecord(this.identity, await this.driver.hostInfo());
  }

  async getHostInfo(): Promise<GetHostInfoResponse> {
    return { host: await this.host() };
  }

  async listDomains(): Promise<HostAgentServiceListDomainsResponse> {
    const infos = (await this.driver.listDomains()).filter((d) => d.domid !== 0).sort((a, b) => a.domid - b.domid);
    // Bindings of domains that went away without DestroyDomain (crashed host, xl destroy) end here.
    const present = new Set(infos.map((d) => d.domid));
    for (const domid of this.fences.keys()) if (!present.has(domid)) this.fences.forget(domid);
    return { domains: await Promise.all(infos.map((info) => this.view(info))) };
  }

  async getDomain(req: GetDomainRequest): Promise<GetDomainResponse> {
    const selector = req.selector;
    if (!selector) throw invalidArgument('SELECTOR_REQUIRED', 'GetDomain needs a name or a domid');
    if (selector.$case === 'domid') return { domain: await this.view(await this.info(selector.domid)) };
    const info = await this.findByName(selector.name);
    if (!info) throw notFound('DOMAIN_NOT_FOUND', `no domain named ${JSON.stringify(selector.name)} on host ${this.hostName}`);
    return { domain: await this.view(info) };
  }

  async createDomain(req: HostAgentServiceCreateDomainRequest): Promise<HostAgentServiceCreateDomainResponse> {
    const spec = toDriverDomainSpec(req.spec);
    if (await this.findByName(spec.name)) {
      throw alreadyExists('DOMAIN_NAME_IN_USE', `host ${this.hostName} already has a domain named ${spec.name}`);
    }
    const host = await this.driver.hostInfo();
    checkCapacity(host, spec.maxPages, spec.name);
    const domid = await this.driver.createDomain(spec);
    await this.waitForBoot(domid, spec.name, spec.workload?.kind === 'kv');
    this.logger.info({ domid, name: spec.name, pages: spec.maxPages, workload: spec.workload?.kind ?? 'idle' }, 'domain created');
    return { domain: await this.view(await this.info(domid)) };
  }

  /**
   * CreateDomain answers once the guest has booted: it advertises suspend support and reports its
   * memory (and a kv guest its service address), so the domain is migratable when the call returns.
   */
  private async waitForBoot(domid: number, name: string, serves: boolean, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.driver.domainInfo(domid);
      if (info.state === 'shutdown') {
        throw new FerryError(status.INTERNAL, 'GUEST_BOOT_FAILED', `${name} shut down (${info.shutdownReason}) while booting`);
      }
      const [suspend, free, address] = await Promise.all([
        this.driver.xenstoreRead(xsPaths.featureSuspend(domid)),
        this.driver.xenstoreRead(xsPaths.meminfoFree(domid)),
        serves ? this.driver.xenstoreRead(xsPaths.serviceAddress(domid)) : Promise.resolve('n/a'),
      ]);
      if (suspend === '1' && free !== null && address) return;
      if (Date.now() > deadline) {
        throw new FerryError(status.DEADLINE_EXCEEDED, 'GUEST_BOOT_TIMEOUT', `${name} did not finish booting within ${timeoutMs / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * The empty, paused domain a migration restores into. It takes the requested name as is (no
   * xl-style "--incoming" suffix: source and target are different hosts) and is bound to the
   * migration's fence from the start. A retry of the same migration returns the same domain.
   */
  async createRestoreDomain(req: CreateRestoreDomainRequest): Promise<CreateRestoreDomainResponse> {
    const fence = requireFence(req.fence, 'CreateRestoreDomain');
    const running = this.restoring.get(fence.migrationId);
    if (running) {
      // A retry while the first call still runs waits for it, then finds the domain it created.
      await running.catch(() => undefined);
      return this.createRestoreDomainOnce(req, fence);
    }
    const attempt = this.createRestoreDomainOnce(req, fence).finally(() => this.restoring.delete(fence.migrationId));
    this.restoring.set(fence.migrationId, attempt);
    return attempt;
  }

  async pauseDomain(req: PauseDomainRequest): Promise<PauseDomainResponse> {
    await this.admit(req.domid, req.fence, 'PauseDomain');
    await this.driver.pause(req.domid);
    return { domain: await this.current(req.domid) };
  }

  /** Ends a migration's downtime: the reply follows the unpause with no further hypercall (see afterAction). */
  async unpauseDomain(req: UnpauseDomainRequest): Promise<UnpauseDomainResponse> {
    const info = await this.admit(req.domid, req.fence, 'UnpauseDomain');
    const unpausing = this.driver.unpause(req.domid);
    const keys = readDomainKeys(this.driver, req.domid);
    await unpausing;
    return { domain: await this.afterAction({ ...info, state: 'running', shutdownReason: null }, keys) };
  }

  async suspendDomain(req: SuspendDomainRequest): Promise<SuspendDomainResponse> {
    const timeoutMs = req.timeoutMs === 0n ? (this.opts.defaultSuspendTimeoutMs ?? DEFAULT_SUSPEND_TIMEOUT_MS) : Number(req.timeoutMs);
    if (timeoutMs > MAX_SUSPEND_TIMEOUT_MS) {
      throw invalidArgument('INVALID_TIMEOUT', `timeout_ms must be at most ${MAX_SUSPEND_TIMEOUT_MS}, got ${req.timeoutMs}`);
    }
    const info = await this.admit(req.domid, req.fence, 'SuspendDomain');
    const started = Date.now();
    const suspending = this.driver.suspend(req.domid, { timeoutMs });
    const keys = readDomainKeys(this.driver, req.domid);
    await suspending;
    const elapsedMs = Date.now() - started;
    this.logger.info({ domid: req.domid, elapsedMs, migrationId: req.fence?.migrationId }, 'domain suspended');
    const domain = await this.afterAction({ ...info, state: 'shutdown', shutdownReason: 'suspend' }, keys);
    return { domain, elapsedMs: BigInt(elapsedMs) };
  }

  async resumeDomain(req: ResumeDomainRequest): Promise<ResumeDomainResponse> {
    const info = await this.admit(req.domid, req.fence, 'ResumeDomain');
    // A retried resume finds the guest running again: that is success, not an error.
    if (info.state !== 'running') await this.driver.resumeSuspended(req.domid);
    return { domain: await this.current(req.domid) };
  }

  async destroyDomain(req: DestroyDomainRequest): Promise<DestroyDomainResponse> {
    checkDomid(req.domid);
    const info = await this.infoOrUndefined(req.domid);
    if (!info) {
      this.fences.forget(req.domid);
      return { destroyed: false }; // already gone: a retried call
    }
    this.fences.admit(req.domid, req.fence, 'DestroyDomain');
    try {
      await this.driver.destroy(req.domid);
    } catch (err) {
      if (!(err instanceof HypervisorError && err.code === 'ESRCH')) throw err;
      this.fences.forget(req.domid);
      return { destroyed: false };
    }
    this.fences.forget(req.domid);
    this.logger.info({ domid: req.domid, name: info.name, migrationId: req.fence?.migrationId }, 'domain destroyed');
    return { destroyed: true };
  }

  async releaseDomain(req: ReleaseDomainRequest): Promise<ReleaseDomainResponse> {
    const fence = requireFence(req.fence, 'ReleaseDomain');
    checkDomid(req.domid);
    const released = this.fences.release(req.domid, fence, 'ReleaseDomain');
    if (released) this.logger.info({ domid: req.domid, migrationId: fence.migrationId }, 'domain released');
    return { released };
  }

  async getVcpuContext(req: GetVcpuContextRequest): Promise<GetVcpuContextResponse> {
    checkDomid(req.domid);
    await this.info(req.domid);
    return { context: Buffer.from(await this.driver.getVcpuContext(req.domid)) };
  }

  async setVcpuContext(req: SetVcpuContextRequest): Promise<SetVcpuContextResponse> {
    if (req.context.length === 0) throw invalidArgument('CONTEXT_REQUIRED', 'SetVcpuContext needs a non-empty context');
    if (req.context.length > MAX_VCPU_CONTEXT_BYTES) {
      throw invalidArgument('CONTEXT_TOO_LARGE', `a vCPU context of ${req.context.length} bytes exceeds ${MAX_VCPU_CONTEXT_BYTES}`);
    }
    await this.admit(req.domid, req.fence, 'SetVcpuContext');
    await this.driver.setVcpuContext(req.domid, req.context);
    return {};
  }

  async checkMigration(req: CheckMigrationRequest): Promise<CheckMigrationResponse> {
    if (req.domainName === '') throw invalidArgument('DOMAIN_NAME_REQUIRED', 'CheckMigration needs domain_name');
    const host = await this.host();
    const namesake = await this.findByName(req.domainName);
    const holder = namesake ? this.fences.holder(namesake.domid) : undefined;
    switch (req.role) {
      case MigrationRole.MIGRATION_ROLE_SOURCE: {
        const featureSuspend = namesake ? await this.driver.xenstoreRead(xsPaths.featureSuspend(namesake.domid)).catch(() => null) : null;
        const suspendProblem =
          namesake && this.driver.suspendProblem
            ? await this.driver.suspendProblem(namesake.domid).catch((err: unknown) => `its suspend method cannot be read: ${(err as Error).message}`)
            : undefined;
        const reasons = sourceReasons({
          host: host.name,
          migrationId: req.migrationId,
          domainName: req.domainName,
          domain: namesake,
          featureSuspend,
          suspendProblem,
          holder,
        });
        if (!namesake) return { reasons, host, domain: undefined };
        const domain = await this.view(namesake);
        // What the target's stock receiver creates the domain from (Xen): only the source's answer carries it.
        if (this.driver.toolstackConfig && reasons.length === 0) {
          domain.xlConfig = await this.driver.toolstackConfig(namesake.domid).then(
            (config) => config ?? '',
            (err: unknown) => {
              // The target then synthesises a config from the domain's figures.
              this.logger.warn({ domid: namesake.domid, err: (err as Error).message }, "the domain's toolstack config cannot be read");
              return '';
            },
          );
        }
        return { reasons, host, domain };
      }
      case MigrationRole.MIGRATION_ROLE_TARGET: {
        const reasons = targetReasons({
          host,
          migrationId: req.migrationId,
          domainName: req.domainName,
          namesake,
          namesakeHolder: holder,
          requiredPages: req.requiredPages,
          maxPages: req.maxPages,
          source: req.source,
        });
        return { reasons, host, domain: undefined };
      }
      default:
        throw invalidArgument('ROLE_REQUIRED', `CheckMigration needs role SOURCE or TARGET, got ${req.role}`);
    }
  }

  private async createRestoreDomainOnce(req: CreateRestoreDomainRequest, fence: FenceLike): Promise<CreateRestoreDomainResponse> {
    const name = checkDomainName(req.name);
    const vcpus = checkVcpus(req.vcpus);
    if (req.maxPages <= 0n || req.maxPages > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw invalidArgument('INVALID_MEMORY', `max_pages must be a positive number of pages, got ${req.maxPages}`);
    }
    const maxPages = Number(req.maxPages);
    // The capacity check counts the memory the domain may use, not its p2m size (Xen: far larger).
    const memoryPages = req.memoryPages > 0n && req.memoryPages < req.maxPages ? Number(req.memoryPages) : maxPages;
    if (req.uuid !== '' && !isUuid(req.uuid)) throw invalidArgument('INVALID_UUID', `uuid ${JSON.stringify(req.uuid)} is not a UUID`);

    // On Xen the stock receiver names the domain "<name>--incoming" until the migration commits.
    const existing = (await this.findByName(name)) ?? (this.driver.kind === 'xen' ? await this.findByName(`${name}--incoming`) : undefined);
    if (existing) {
      const holder = this.fences.holder(existing.domid);
      if (holder?.migrationId !== fence.migrationId) {
        throw alreadyExists('DOMAIN_NAME_IN_USE', `host ${this.hostName} already has a domain named ${name} (domid ${existing.domid})`);
      }
      // A retry: the domain this migration created first time round (the epoch is checked too).
      this.fences.admit(existing.domid, fence, 'CreateRestoreDomain');
      return { domain: await this.view(existing) };
    }
    const host = await this.driver.hostInfo();
    if (memoryPages > host.totalPages) {
      throw new FerryError(
        status.RESOURCE_EXHAUSTED,
        'INSUFFICIENT_MEMORY',
        `a domain of ${memoryPages} pages does not fit host ${this.hostName} (${host.totalPages} pages)`,
      );
    }
    const domid = await this.driver.createRestoreDomain({
      name,
      maxPages,
      vcpus,
      ...(req.xlConfig !== '' ? { xlConfig: req.xlConfig } : {}),
      ...(memoryPages !== maxPages ? { memoryPages } : {}),
      ...(req.uuid !== '' ? { uuid: req.uuid.toLowerCase() } : {}),
    });
    this.fences.admit(domid, fence, 'CreateRestoreDomain');
    // libxl records the vm entry itself for a domain the xl receiver creates.
    if (req.uuid !== '' && this.driver.kind !== 'xen') await this.driver.xenstoreWrite(vmPath(domid), `/vm/${req.uuid.toLowerCase()}`);
    this.logger.info({ domid, name, maxPages, migrationId: fence.migrationId }, 'restore domain created');
    return { domain: await this.view(await this.info(domid)) };
  }

  /** Checks the domain exists and the fence admits the call (binding the domain on a first fenced call). */
  private async admit(domid: number, fence: FenceLike | undefined, what: string): Promise<DomainInfo> {
    checkDomid(domid);
    const info = await this.info(domid);
    this.fences.admit(domid, fence, what);
    return info;
  }

  private async info(domid: number): Promise<DomainInfo> {
    const info = await this.infoOrUndefined(domid);
    if (!info) throw notFound('DOMAIN_NOT_FOUND', `no domain ${domid} on host ${this.hostName}`);
    return info;
  }

  private async infoOrUndefined(domid: number): Promise<DomainInfo | undefined> {
    if (domid === 0) return undefined;
    try {
      return await this.driver.domainInfo(domid);
    } catch (err) {
      if (err instanceof HypervisorError && err.code === 'ESRCH') {
        this.fences.forget(domid);
        return undefined;
      }
      throw err;
    }
  }

  private async findByName(name: string): Promise<DomainInfo | undefined> {
    return (await this.driver.listDomains()).find((d) => d.name === name && d.domid !== 0);
  }

  private async current(domid: number): Promise<Domain> {
    return this.view(await this.info(domid));
  }

  /**
   * The domain right after a suspend or unpause that succeeded, for the reply. A migration's
   * downtime runs from its SuspendDomain call to its UnpauseDomain reply, so these replies carry the
   * state the action has just established (the driver confirmed it) and the xenstore keys read while
   * it ran, instead of reading everything again after it: that would be two more hypercall round
   * trips in the window.
   */
  private async afterAction(info: DomainInfo, keys: Promise<DomainKeys>): Promise<Domain> {
    return domainOf(info, await keys, { host: this.hostName, migrationId: this.fences.holder(info.domid)?.migrationId });
  }

  private view(info: DomainInfo): Promise<Domain> {
    return describeDomain(this.driver, info, { host: this.hostName, migrationId: this.fences.holder(info.domid)?.migrationId });
  }
}

function checkDomid(domid: number): void {
  if (domid === 0) throw invalidArgument('DOM0', 'domid 0 is dom0, which the host agent does not manage');
}

function checkCapacity(host: HostInfo, pages: number, name: string): void {
  if (pages > host.freePages) {
    throw new FerryError(
      status.RESOURCE_EXHAUSTED,
      'INSUFFICIENT_MEMORY',
      `domain ${name} needs ${pages} pages, host has ${host.freePages} of ${host.totalPages} free`,
    );
  }
}
