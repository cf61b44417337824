// The host agent as it runs: a real emulated Xen host process, a real nats-server, and the
// host-agent process started from its main.ts, called over gRPC.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { getHost } from '@ferry/cluster';
import { spawnEmuHost, type EmuHostProcess } from '@ferry/emu-host';
import { KvClient } from '@ferry/guest';
import {
  CheckMigrationRequest,
  CreateRestoreDomainRequest,
  DestroyDomainRequest,
  DomainState,
  GetDomainRequest,
  GetVcpuContextRequest,
  Host,
  HostAgentClient,
  HostAgentServiceCreateDomainRequest,
  HostDriver,
  MigrationRole,
  PauseDomainRequest,
  PreflightCode,
  ReleaseDomainRequest,
  ResumeDomainRequest,
  SetVcpuContextRequest,
  ShutdownReason,
  SuspendDomainRequest,
  UnpauseDomainRequest,
  WorkloadKind,
  type Domain,
  type DomainSpec,
} from '@ferry/proto';
import { call } from '@ferry/runtime';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNats, tempDir, waitFor, type NatsFixture } from '@ferry/testing';
import { failure, spawnService, type ServiceProcess } from '../../../libs/agent/test/support/processes';

const MiB = 1024 * 1024;
const HOST = 'host-a';
const PEERS = { memoryTracker: '127.0.0.1:7101', balloonManager: '127.0.0.1:7102', pageStreamer: '127.0.0.1:7103' };
const CALL_MS = 60_000;

describe('host-agent', { timeout: 600_000 }, () => {
  const dir = tempDir('ferry-host-agent');
  let emu: EmuHostProcess;
  let nats: NatsFixture;
  let nc: NatsConnection;
  let agent: ServiceProcess;
  let client: HostAgentClient;
  let kv: Domain;
  /** The kv guest's vCPU context, read while it was suspended. */
  let savedContext: Buffer;

  before(async () => {
    emu = await spawnEmuHost({ name: HOST, dir: dir.path, capacityBytes: 1024 * MiB });
    nats = await startNats();
    nc = await nats.connect();
    agent = await spawnService('host-agent', {
      FERRY_HOST: HOST,
      FERRY_DRIVER: 'emulated',
      FERRY_EMU_SOCKET: emu.socketPath,
      NATS_URL: nats.url,
      FERRY_LISTEN: '127.0.0.1:0',
      FERRY_MEMORY_TRACKER: PEERS.memoryTracker,
      FERRY_BALLOON_MANAGER: PEERS.balloonManager,
      FERRY_PAGE_STREAMER: PEERS.pageStreamer,
    });
    client = new HostAgentClient(agent.address, credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await agent?.stop();
    await nats?.stop();
    await emu?.stop();
    dir.remove();
  });

  const createDomain = (spec: Partial<DomainSpec>) =>
    call(client.createDomain, client, HostAgentServiceCreateDomainRequest.fromPartial({ spec }), CALL_MS);
  const getDomain = (selector: { $case: 'name'; name: string } | { $case: 'domid'; domid: number }) =>
    call(client.getDomain, client, GetDomainRequest.fromPartial({ selector }), CALL_MS).then((r) => r.domain!);
  const fence = (migrationId: string, epoch: number) => ({ migrationId, epoch: BigInt(epoch) });

  it('registers its host with the four service addresses once ready', async () => {
    assert.equal(agent.ready.msg, 'ready');
    const record = await waitFor('the registry entry', () => getHost(nc, HOST));
    assert.equal(record.name, HOST);
    assert.equal(record.driver, 'emulated');
    assert.equal(record.hostAgent, agent.address);
    assert.equal(record.memoryTracker, PEERS.memoryTracker);
    assert.equal(record.balloonManager, PEERS.balloonManager);
    assert.equal(record.pageStreamer, PEERS.pageStreamer);
    assert.equal(record.totalPages, 262144);

    const { host } = await call(client.getHostInfo, client, {}, CALL_MS);
    assert.equal(host?.name, HOST);
    assert.equal(host?.driver, HostDriver.HOST_DRIVER_EMULATED);
    assert.deepEqual(host?.xenVersion, { major: 4, minor: 17 });
    assert.equal(host?.totalPages, 262144n);
    assert.deepEqual(host?.endpoints, { hostAgent: agent.address, ...PEERS });
  });

  it('creates a kv domain, lists it and finds it by name and domid with its service address', async () => {
    const created = await createDomain({
      name: 'kv-1',
      memoryBytes: BigInt(64 * MiB),
      workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 7, freeFraction: 0.5, writeRate: 50 } as DomainSpec['workload'],
    });
    kv = created.domain!;
    assert.equal(kv.name, 'kv-1');
    assert.equal(kv.state, DomainState.DOMAIN_STATE_RUNNING);
    assert.equal(kv.maxPages, 16384n);
    assert.equal(kv.nrPages, 16384n);
    assert.equal(kv.host, HOST);
    assert.equal(kv.migrationId, '');

    const { domains } = await call(client.listDomains, client, {}, CALL_MS);
    assert.deepEqual(
      domains.map((d) => [d.domid, d.name]),
      [[kv.domid, 'kv-1']],
    );
    const byId = await getDomain({ $case: 'domid', domid: kv.domid });
    assert.equal(byId.name, 'kv-1');
    assert.equal(byId.uuid, kv.uuid);
    // The guest publishes its address once its network service listens.
    const byName = await waitFor('the kv service address', async () => {
      const d = await getDomain({ $case: 'name', name: 'kv-1' });
      return d.serviceAddress !== '' ? d : undefined;
    });
    assert.equal(byName.domid, kv.domid);
    const kvClient = await KvClient.connect(byName.serviceAddress);
    try {
      await kvClient.set('greeting', 'hello from the host-agent test');
      assert.equal(await kvClient.get('greeting'), 'hello from the host-agent test');
    } finally {
      kvClient.close();
    }
  });

  it('refuses bad domain specs with clear statuses', async () => {
    const good = { name: 'ok', memoryBytes: BigInt(16 * MiB) };
    const cases: Array<[string, Partial<DomainSpec> | undefined, number, string]> = [
      ['no spec', undefined, status.INVALID_ARGUMENT, 'SPEC_REQUIRED'],
      ['bad name', { ...good, name: 'bad name!' }, status.INVALID_ARGUMENT, 'INVALID_NAME'],
      ['zero memory', { ...good, memoryBytes: 0n }, status.INVALID_ARGUMENT, 'INVALID_MEMORY'],
      ['memory not in pages', { ...good, memoryBytes: BigInt(16 * MiB + 100) }, status.INVALID_ARGUMENT, 'INVALID_MEMORY'],
      ['unknown workload', { ...good, workload: { kind: 99 } as unknown as DomainSpec['workload'] }, status.INVALID_ARGUMENT, 'UNKNOWN_WORKLOAD'],
      ['free fraction 1', { ...good, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, freeFraction: 1 } as DomainSpec['workload'] }, status.INVALID_ARGUMENT, 'INVALID_WORKLOAD'],
      ['negative free fraction', { ...good, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, freeFraction: -0.1 } as DomainSpec['workload'] }, status.INVALID_ARGUMENT, 'INVALID_WORKLOAD'],
      ['too many vcpus', { ...good, vcpus: 1000 }, status.INVALID_ARGUMENT, 'INVALID_VCPUS'],
      ['taken name', { ...good, name: 'kv-1' }, status.ALREADY_EXISTS, 'DOMAIN_NAME_IN_USE'],
      ['over capacity', { ...good, name: 'huge', memoryBytes: BigInt(2048 * MiB) }, status.RESOURCE_EXHAUSTED, 'INSUFFICIENT_MEMORY'],
    ];
    for (const [what, spec, code, reason] of cases) {
      const req = spec === undefined ? HostAgentServiceCreateDomainRequest.fromPartial({}) : HostAgentServiceCreateDomainRequest.fromPartial({ spec });
      const f = await failure(call(client.createDomain, client, req, CALL_MS));
      assert.equal(f.code, code, `${what}: ${f.message}`);
      assert.equal(f.reason, reason, `${what}: ${f.message}`);
    }
    const missing = await failure(getDomain({ $case: 'name', name: 'nope' }));
    assert.equal(missing.code, status.NOT_FOUND);
    assert.equal(missing.reason, 'DOMAIN_NOT_FOUND');
    const noDomid = await failure(call(client.pauseDomain, client, PauseDomainRequest.fromPartial({ domid: 4242 }), CALL_MS));
    assert.equal(noDomid.code, status.NOT_FOUND);
    const noSelector = await failure(call(client.getDomain, client, GetDomainRequest.fromPartial({}), CALL_MS));
    assert.equal(noSelector.code, status.INVALID_ARGUMENT);
    const { domains } = await call(client.listDomains, client, {}, CALL_MS);
    assert.equal(domains.length, 1, 'no refused spec left a domain behind');
  });

  it('answers pre-flight with machine-readable reasons', async () => {
    const check = (req: Partial<CheckMigrationRequest>) => call(client.checkMigration, client, CheckMigrationRequest.fromPartial(req), CALL_MS);
    const codes = (r: { reasons: { code: PreflightCode }[] }) => r.reasons.map((x) => x.code).sort((a, b) => a - b);

    const unknown = await check({ role: MigrationRole.MIGRATION_ROLE_SOURCE, domainName: 'nope' });
    assert.deepEqual(codes(unknown), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_FOUND]);
    assert.equal(unknown.reasons[0].host, HOST);
    assert.equal(unknown.reasons[0].role, MigrationRole.MIGRATION_ROLE_SOURCE);

    const source = await check({ role: MigrationRole.MIGRATION_ROLE_SOURCE, domainName: 'kv-1', migrationId: 'm-0' });
    assert.deepEqual(source.reasons, []);
    assert.equal(source.domain?.domid, kv.domid);
    assert.equal(source.host?.name, HOST);

    const compatible = Host.fromPartial({ name: 'host-b', driver: HostDriver.HOST_DRIVER_EMULATED, xenVersion: { major: 4, minor: 17 }, ferryVersion: source.host!.ferryVersion });
    const fine = await check({ role: MigrationRole.MIGRATION_ROLE_TARGET, domainName: 'vm-new', requiredPages: 16384n, maxPages: 16384n, source: compatible });
    assert.deepEqual(fine.reasons, []);

    const noRoom = await check({ role: MigrationRole.MIGRATION_ROLE_TARGET, domainName: 'vm-new', requiredPages: 300_000n, source: compatible });
    assert.deepEqual(codes(noRoom), [PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY]);
    assert.match(noRoom.reasons[0].message, /needs 300000 pages, \d+ free/);
    const tooBig = await check({ role: MigrationRole.MIGRATION_ROLE_TARGET, domainName: 'vm-new', requiredPages: 1n, maxPages: 300_000n });
    assert.deepEqual(codes(tooBig), [PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY]);

    const sameName = await check({ role: MigrationRole.MIGRATION_ROLE_TARGET, domainName: 'kv-1', requiredPages: 1n, source: compatible });
    assert.deepEqual(codes(sameName), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NAME_IN_USE]);

    const incompatible = await check({
      role: MigrationRole.MIGRATION_ROLE_TARGET,
      domainName: 'vm-new',
      requiredPages: 1n,
      source: Host.fromPartial({ name: HOST, driver: HostDriver.HOST_DRIVER_XEN, xenVersion: { major: 4, minor: 18 }, ferryVersion: '9.0.0' }),
    });
    assert.deepEqual(codes(incompatible), [
      PreflightCode.PREFLIGHT_CODE_HYPERVISOR_VERSION_INCOMPATIBLE,
      PreflightCode.PREFLIGHT_CODE_FERRY_VERSION_INCOMPATIBLE,
      PreflightCode.PREFLIGHT_CODE_DRIVER_MISMATCH,
      PreflightCode.PREFLIGHT_CODE_SAME_HOST,
    ].sort((a, b) => a - b));
    assert.ok(incompatible.reasons.every((r) => r.role === MigrationRole.MIGRATION_ROLE_TARGET && r.message !== ''));

    const noRole = await failure(check({ domainName: 'kv-1' }));
    assert.equal(noRole.code, status.INVALID_ARGUMENT);
    assert.equal(noRole.reason, 'ROLE_REQUIRED');
  });

  it('fences a domain to the first migration and refuses others and stale epochs', async () => {
    const pause = (f?: ReturnType<typeof fence>) =>
      call(client.pauseDomain, client, PauseDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS).then((r) => r.domain!);
    const unpause = (f?: ReturnType<typeof fence>) =>
      call(client.unpauseDomain, client, UnpauseDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS).then((r) => r.domain!);
    const release = (f?: ReturnType<typeof fence>) =>
      call(client.releaseDomain, client, ReleaseDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS);

    const paused = await pause(fence('m-1', 5));
    assert.equal(paused.state, DomainState.DOMAIN_STATE_PAUSED);
    assert.equal(paused.migrationId, 'm-1');
    assert.equal((await getDomain({ $case: 'domid', domid: kv.domid })).migrationId, 'm-1');

    const other = await failure(unpause(fence('m-2', 9)));
    assert.equal(other.code, status.FAILED_PRECONDITION);
    assert.equal(other.reason, 'DOMAIN_HELD_BY_MIGRATION');
    const stale = await failure(unpause(fence('m-1', 4)));
    assert.equal(stale.code, status.ABORTED);
    assert.equal(stale.reason, 'FENCE_STALE_EPOCH');
    const operator = await failure(unpause());
    assert.equal(operator.code, status.FAILED_PRECONDITION);
    assert.equal(operator.reason, 'DOMAIN_HELD_BY_MIGRATION');
    const badFence = await failure(unpause(fence('m-1', 0)));
    assert.equal(badFence.code, status.INVALID_ARGUMENT);
    assert.equal(badFence.reason, 'FENCE_INVALID');

    const preflightOther = await call(
      client.checkMigration,
      client,
      CheckMigrationRequest.fromPartial({ role: MigrationRole.MIGRATION_ROLE_SOURCE, domainName: 'kv-1', migrationId: 'm-2' }),
      CALL_MS,
    );
    assert.ok(preflightOther.reasons.some((r) => r.code === PreflightCode.PREFLIGHT_CODE_MIGRATION_IN_FLIGHT));
    const preflightOwn = await call(
      client.checkMigration,
      client,
      CheckMigrationRequest.fromPartial({ role: MigrationRole.MIGRATION_ROLE_SOURCE, domainName: 'kv-1', migrationId: 'm-1' }),
      CALL_MS,
    );
    assert.deepEqual(preflightOwn.reasons, [], 'a retried pre-flight of the holding migration passes');

    // A newer coordinator term is accepted and becomes the bar.
    assert.equal((await unpause(fence('m-1', 6))).state, DomainState.DOMAIN_STATE_RUNNING);
    assert.equal((await failure(pause(fence('m-1', 5)))).code, status.ABORTED);
    assert.equal((await pause(fence('m-1', 6))).state, DomainState.DOMAIN_STATE_PAUSED, 'pausing again is idempotent');

    assert.equal((await failure(release())).reason, 'FENCE_REQUIRED');
    assert.equal((await failure(release(fence('m-1', 2)))).code, status.ABORTED);
    assert.deepEqual(await release(fence('m-2', 9)), { released: false });
    assert.deepEqual(await release(fence('m-1', 6)), { released: true });
    assert.deepEqual(await release(fence('m-1', 6)), { released: false }, 'a retried release');

    const free = await unpause();
    assert.equal(free.state, DomainState.DOMAIN_STATE_RUNNING);
    assert.equal(free.migrationId, '');
  });

  it('suspends and resumes a guest through the control/shutdown handshake', async () => {
    const f = fence('m-3', 1);
    const suspended = await call(client.suspendDomain, client, SuspendDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS);
    assert.equal(suspended.domain?.state, DomainState.DOMAIN_STATE_SHUTDOWN);
    assert.equal(suspended.domain?.shutdownReason, ShutdownReason.SHUTDOWN_REASON_SUSPEND);
    assert.equal(suspended.domain?.name, 'kv-1');
    assert.equal(suspended.domain?.migrationId, 'm-3');
    assert.equal(suspended.domain?.uuid, kv.uuid);
    const { context } = await call(client.getVcpuContext, client, GetVcpuContextRequest.fromPartial({ domid: kv.domid }), CALL_MS);
    assert.ok(context.length > 0);
    savedContext = context;

    const resumed = await call(client.resumeDomain, client, ResumeDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS);
    assert.equal(resumed.domain?.state, DomainState.DOMAIN_STATE_RUNNING);
    const again = await call(client.resumeDomain, client, ResumeDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS);
    assert.equal(again.domain?.state, DomainState.DOMAIN_STATE_RUNNING, 'a retried resume succeeds');

    // The guest carries on: its service comes back (on a new port, published once it listens
    // again) with the data written before.
    const value = await waitFor('the kv value after resume', async () => {
      const { serviceAddress } = await getDomain({ $case: 'domid', domid: kv.domid });
      if (serviceAddress === '') return undefined;
      const c = await KvClient.connect(serviceAddress);
      try {
        return (await c.get('greeting')) ?? undefined;
      } finally {
        c.close();
      }
    });
    assert.equal(value, 'hello from the host-agent test');
    assert.deepEqual(
      await call(client.releaseDomain, client, ReleaseDomainRequest.fromPartial({ domid: kv.domid, fence: f }), CALL_MS),
      { released: true },
    );
  });

  it('creates the restore domain of a migration once, bound to its fence', async () => {
    const uuid = '0b6c7f0e-3f7a-4c43-9f55-2d7d3d0f1a11';
    const request = (f: ReturnType<typeof fence> | undefined, name = 'kv-1-copy') =>
      call(
        client.createRestoreDomain,
        client,
        CreateRestoreDomainRequest.fromPartial({ fence: f, name, maxPages: 16384n, vcpus: 1, uuid }),
        CALL_MS,
      ).then((r) => r.domain!);
    const target = await request(fence('m-5', 1));
    assert.equal(target.state, DomainState.DOMAIN_STATE_PAUSED);
    assert.equal(target.nrPages, 0n);
    assert.equal(target.maxPages, 16384n);
    assert.equal(target.uuid, uuid);
    assert.equal(target.migrationId, 'm-5');
    assert.equal((await request(fence('m-5', 1))).domid, target.domid, 'a retry returns the same domain');

    const clash = await failure(request(fence('m-6', 1)));
    assert.equal(clash.code, status.ALREADY_EXISTS);
    assert.equal(clash.reason, 'DOMAIN_NAME_IN_USE');
    assert.equal((await failure(request(undefined, 'other'))).reason, 'FENCE_REQUIRED');
    assert.equal((await failure(request(fence('m-5', 1), 'no good'))).reason, 'INVALID_NAME');

    const setContext = (f: ReturnType<typeof fence>, context: Buffer) =>
      call(client.setVcpuContext, client, SetVcpuContextRequest.fromPartial({ domid: target.domid, fence: f, context }), CALL_MS);
    assert.equal((await failure(setContext(fence('m-6', 1), savedContext))).code, status.FAILED_PRECONDITION);
    assert.equal((await failure(setContext(fence('m-5', 1), Buffer.alloc(0)))).reason, 'CONTEXT_REQUIRED');
    assert.deepEqual(await setContext(fence('m-5', 1), savedContext), {});
    const { context } = await call(client.getVcpuContext, client, GetVcpuContextRequest.fromPartial({ domid: target.domid }), CALL_MS);
    assert.deepEqual(context, savedContext, 'the restore domain holds the context it was given');
    const operatorUnpause = await failure(call(client.unpauseDomain, client, UnpauseDomainRequest.fromPartial({ domid: target.domid }), CALL_MS));
    assert.equal(operatorUnpause.code, status.FAILED_PRECONDITION);

    const destroy = (f?: ReturnType<typeof fence>) =>
      call(client.destroyDomain, client, DestroyDomainRequest.fromPartial({ domid: target.domid, fence: f }), CALL_MS);
    assert.equal((await failure(destroy(fence('m-6', 1)))).code, status.FAILED_PRECONDITION);
    assert.deepEqual(await destroy(fence('m-5', 2)), { destroyed: true });
    assert.deepEqual(await destroy(fence('m-5', 2)), { destroyed: false }, 'a retried destroy');
    const { domains } = await call(client.listDomains, client, {}, CALL_MS);
    assert.deepEqual(domains.map((d) => d.name), ['kv-1']);
  });

  it('deregisters its host when it stops', async () => {
    assert.deepEqual(await call(client.destroyDomain, client, DestroyDomainRequest.fromPartial({ domid: kv.domid }), CALL_MS), { destroyed: true });
    const code = await agent.stop();
    assert.equal(code, 0, agent.output());
    await waitFor('the registry entry to go', async () => (await getHost(nc, HOST)) === undefined);
  });
});
