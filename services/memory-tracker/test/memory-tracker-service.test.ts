// The memory-tracker process over real gRPC, against a real emulated host.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { bitmapCount, PAGE_SIZE } from '@ferry/hypervisor';
import { MemoryTrackerClient, MigrationPolicy } from '@ferry/proto';
import { call, GRPC_MESSAGE_LIMITS, reasonOf } from '@ferry/runtime';
import { startEmuHosts, type TestHosts } from '../../../libs/tracker/test/support/emu';
import { startService, type ServiceProcess } from './support/service-process';

const GUEST_PAGES = (8 * 1024 * 1024) / PAGE_SIZE;

function grpcError(code: status, reason: string) {
  return (err: unknown) => {
    const e = err as ServiceError;
    assert.equal(e.code, code, e.details);
    assert.equal(reasonOf(err), reason, e.details);
    return true;
  };
}

describe('memory-tracker service process', () => {
  let env: TestHosts;
  let service: ServiceProcess;
  let client: MemoryTrackerClient;
  let domid: number;

  before(async () => {
    env = await startEmuHosts(['mt-host']);
    domid = await env.hosts[0].driver.createDomain({
      name: 'guest',
      maxPages: GUEST_PAGES,
      workload: { kind: 'memtest', seed: 1, freeFraction: 0.5, writeRate: 1000, pattern: 'random' },
    });
    service = await startService('memory-tracker', { FERRY_EMU_SOCKET: env.hosts[0].process.socketPath, FERRY_HOST: 'mt-host' });
    client = new MemoryTrackerClient(String(service.ready.address), credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
  });

  after(async () => {
    client?.close();
    await service?.stop();
    await env?.stop();
  });

  it('logs its ready line with the bound address', () => {
    assert.match(String(service.ready.address), /^127\.0\.0\.1:\d+$/);
    assert.notEqual(String(service.ready.address), '127.0.0.1:0');
  });

  it('serves a migration: start, rounds, send sets, stop', async () => {
    const fence = { migrationId: 'svc-mig', epoch: 1n };
    const started = await call(client.startTracking, client, { fence, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_LAYERED } });
    assert.equal(started.maxPages, BigInt(GUEST_PAGES));
    const r0 = await call(client.prepareRound, client, { fence, round: 0, final: false, takeSendSet: false });
    assert.equal(r0.pagesToSend, started.populatedPages);
    assert.equal(r0.layers?.cold, BigInt(GUEST_PAGES));
    const set = await call(client.takeSendSet, client, { migrationId: fence.migrationId, round: 0 });
    assert.equal(set.bitmap.length, GUEST_PAGES / 8);
    assert.equal(BigInt(bitmapCount(set.bitmap)), set.pageCount);
    assert.equal(set.domid, domid);
    assert.equal(set.skipRedirtiedPages, false);
    await assert.rejects(call(client.prepareRound, client, { fence, round: 2, final: false, takeSendSet: false }), grpcError(status.FAILED_PRECONDITION, 'ROUND_OUT_OF_ORDER'));
    const r1 = await call(client.prepareRound, client, { fence, round: 1, final: false, takeSendSet: false });
    assert.equal(r1.round, 1);
    assert.deepEqual(await call(client.prepareRound, client, { fence, round: 1, final: false, takeSendSet: false }), r1);
    assert.equal(r1.sendSet, undefined);
    // Prepared and taken in one call: the same counts, and the send set TakeSendSet would give.
    const r1taken = await call(client.prepareRound, client, { fence, round: 1, final: false, takeSendSet: true });
    const sendSet = r1taken.sendSet;
    assert.deepEqual({ ...r1taken, sendSet: undefined }, r1);
    assert.deepEqual(sendSet, await call(client.takeSendSet, client, { migrationId: fence.migrationId, round: 1 }));
    assert.equal(BigInt(bitmapCount(sendSet!.bitmap)), r1.pagesToSend);
    await assert.rejects(call(client.takeSendSet, client, { migrationId: fence.migrationId, round: 0 }), grpcError(status.NOT_FOUND, 'ROUND_NOT_PREPARED'));
    await assert.rejects(
      call(client.probeDirtyRate, client, { domid, durationMs: 100n, intervalMs: 50n }),
      grpcError(status.FAILED_PRECONDITION, 'DOMAIN_TRACKED'),
    );
    assert.equal((await call(client.stopTracking, client, { fence })).stopped, true);
    assert.equal((await call(client.stopTracking, client, { fence })).stopped, false);
    assert.equal((await env.hosts[0].driver.domainInfo(domid)).logDirty, false);
  });

  it('answers bad requests with a status and a reason', async () => {
    await assert.rejects(
      call(client.startTracking, client, { fence: { migrationId: 'x', epoch: 1n }, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_UNSPECIFIED } }),
      grpcError(status.INVALID_ARGUMENT, 'POLICY_REQUIRED'),
    );
    await assert.rejects(
      call(client.startTracking, client, { fence: undefined, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17 } }),
      grpcError(status.INVALID_ARGUMENT, 'FENCE_REQUIRED'),
    );
    await assert.rejects(
      call(client.startTracking, client, { fence: { migrationId: 'x', epoch: 1n }, domid: 4242, policy: { policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17 } }),
      grpcError(status.NOT_FOUND, 'DOMAIN_NOT_FOUND'),
    );
    await assert.rejects(
      call(client.prepareRound, client, { fence: { migrationId: 'nobody', epoch: 1n }, round: 0, final: false, takeSendSet: false }),
      grpcError(status.NOT_FOUND, 'MIGRATION_NOT_TRACKED'),
    );
    await assert.rejects(
      call(client.startTracking, client, {
        fence: { migrationId: 'x', epoch: 1n },
        domid,
        policy: { policy: MigrationPolicy.MIGRATION_POLICY_LAYERED, layered: { window: 3, threshold: 5, demoteAfter: 0 } },
      }),
      grpcError(status.INVALID_ARGUMENT, 'BAD_LAYERED_PARAMETERS'),
    );
  });

  it('probes the dirty rate', async () => {
    const probe = await call(client.probeDirtyRate, client, { domid, durationMs: 300n, intervalMs: 100n });
    assert.ok(probe.samples >= 1);
    assert.ok(probe.populatedPages > 0n);
    assert.ok(probe.distinctPages <= probe.populatedPages);
  });

  it('on SIGTERM turns log-dirty off for what it tracks and exits 0', async () => {
    const fence = { migrationId: 'svc-mig-2', epoch: 1n };
    await call(client.startTracking, client, { fence, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY } });
    assert.equal((await env.hosts[0].driver.domainInfo(domid)).logDirty, true);
    const exit = await service.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal((await env.hosts[0].driver.domainInfo(domid)).logDirty, false);
  });
});
