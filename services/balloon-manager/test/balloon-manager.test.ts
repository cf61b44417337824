// The balloon manager against real emulated Xen hosts: one running the stock guest (with its
// balloon driver), one whose guests have no balloon driver (support/no-balloon-kernel.ts). The
// managers are the balloon-manager process started from its main.ts, plus one in-process server
// with a long no-progress window for the cancellation case.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { BalloonManager } from '@ferry/balloon';
import { spawnEmuHost, type EmuHostProcess } from '@ferry/emu-host';
import { connectEmulatedDriver, xsPaths, type EmulatedDriver } from '@ferry/hypervisor';
import {
  BalloonManagerClient,
  CompactionShortfall,
  CompactionTimeoutAction,
  CompactRequest,
  FreezeRequest,
  GetMemoryRequest,
  RestoreRequest,
  UnfreezeRequest,
  type CompactResponse,
  type GuestMemory,
} from '@ferry/proto';
import { call, createLogger, type StartedGrpcServer } from '@ferry/runtime';
import { tempDir, waitFor } from '@ferry/testing';
import { failure, spawnService, type ServiceProcess } from '../../../libs/agent/test/support/processes';
import { startBalloonManagerServer } from '../src/server';

const MiB = 1024 * 1024;
const CALL_MS = 120_000;
const BATCH = 512;

type FenceArg = { migrationId: string; epoch: bigint };
const fence = (migrationId: string, epoch: number): FenceArg => ({ migrationId, epoch: BigInt(epoch) });

/** Typed calls of one BalloonManagerService endpoint. */
function balloon(address: string) {
  const client = new BalloonManagerClient(address, credentials.createInsecure());
  return {
    close: () => client.close(),
    memory: (domid: number) => call(client.getMemory, client, GetMemoryRequest.fromPartial({ domid }), CALL_MS).then((r) => r.memory!),
    compact: (req: Partial<CompactRequest> & { domid: number }) =>
      call(client.compact, client, CompactRequest.fromPartial(req), CALL_MS),
    restore: (domid: number, f: FenceArg | undefined, targetPages = 0n) =>
      call(client.restore, client, RestoreRequest.fromPartial({ domid, fence: f, targetPages }), CALL_MS).then((r) => r.memory!),
    freeze: (domid: number, f: FenceArg | undefined) =>
      call(client.freeze, client, FreezeRequest.fromPartial({ domid, fence: f }), CALL_MS).then((r) => r.memory!),
    unfreeze: (domid: number, f: FenceArg | undefined) =>
      call(client.unfreeze, client, UnfreezeRequest.fromPartial({ domid, fence: f }), CALL_MS).then((r) => r.memory!),
  };
}
type Balloon = ReturnType<typeof balloon>;

/** Waits until the guest has reported its free memory (it does so every second from boot). */
function reported(b: Balloon, domid: number): Promise<GuestMemory> {
  return waitFor(`domain ${domid}'s free-memory report`, async () => {
    const m = await b.memory(domid);
    return m.guestFreeReported ? m : undefined;
  });
}

describe('balloon-manager', { timeout: 600_000 }, () => {
  const dir = tempDir('ferry-balloon');
  let stock: EmuHostProcess;
  let noBalloon: EmuHostProcess;
  let stockDriver: EmulatedDriver;
  let noBalloonDriver: EmulatedDriver;
  let stockManager: ServiceProcess;
  let noBalloonManager: ServiceProcess;
  let patientServer: StartedGrpcServer;
  let patient: BalloonManager;
  let a: Balloon;
  let b: Balloon;
  let halfFree: number;
  let full: number;
  let stuck: number;

  before(async () => {
    [stock, noBalloon] = await Promise.all([
      spawnEmuHost({ name: 'bal-a', dir: join(dir.path, 'a'), capacityBytes: 1024 * MiB }),
      spawnEmuHost({
        name: 'bal-b',
        dir: join(dir.path, 'b'),
        capacityBytes: 512 * MiB,
        kernelModule: join(__dirname, 'support', 'no-balloon-kernel.ts'),
      }),
    ]);
    stockDriver = await connectEmulatedDriver(stock.socketPath);
    noBalloonDriver = await connectEmulatedDriver(noBalloon.socketPath);
    const env = (host: EmuHostProcess, extra: Record<string, string> = {}) => ({
      FERRY_HOST: host.name,
      FERRY_DRIVER: 'emulated',
      FERRY_EMU_SOCKET: host.socketPath,
      FERRY_LISTEN: '127.0.0.1:0',
      ...extra,
    });
    [stockManager, noBalloonManager] = await Promise.all([
      spawnService('balloon-manager', env(stock)),
      spawnService('balloon-manager', env(noBalloon, { FERRY_BALLOON_NO_PROGRESS_MS: '1000' })),
    ]);
    a = balloon(stockManager.address);
    b = balloon(noBalloonManager.address);
    const kv = (name: string, mib: number, freeFraction: number) => ({
      name,
      maxPages: (mib * MiB) / 4096,
      workload: { kind: 'kv' as const, seed: 11, freeFraction, writeRate: 100 },
    });
    [halfFree, full, stuck] = await Promise.all([
      stockDriver.createDomain(kv('half-free', 128, 0.5)),
      stockDriver.createDomain(kv('full', 64, 0)),
      noBalloonDriver.createDomain(kv('stuck', 64, 0.5)),
    ]);
  });

  after(async () => {
    a?.close();
    b?.close();
    await patientServer?.shutdown();
    await patient?.close();
    await Promise.all([stockManager?.stop(), noBalloonManager?.stop()]);
    await Promise.all([stockDriver?.close(), noBalloonDriver?.close()]);
    await Promise.all([stock?.stop(), noBalloon?.stop()]);
    dir.remove();
  });

  it('reports a guest\'s memory figures', async () => {
    assert.equal(stockManager.ready.msg, 'ready');
    const m = await reported(a, halfFree);
    assert.equal(m.domid, halfFree);
    assert.equal(m.staticMaxPages, 32768n);
    assert.equal(m.targetPages, 32768n);
    assert.equal(m.populatedPages, 32768n);
    assert.ok(m.guestFreePages > 32768n * 4n / 10n && m.guestFreePages <= 32768n / 2n, `free ${m.guestFreePages}`);
    assert.equal(m.frozen, false);
    assert.equal(m.frozenBy, '');
  });

  let compacted: CompactResponse;

  it('compacts a half-free guest to its used memory plus headroom', async () => {
    const before = await reported(a, halfFree);
    compacted = await a.compact({ domid: halfFree, fence: fence('m-1', 1) });
    const r = compacted.result!;
    assert.equal(r.reached, true, r.reason);
    assert.equal(r.shortfall, CompactionShortfall.COMPACTION_SHORTFALL_UNSPECIFIED);
    assert.equal(r.reason, '');
    assert.equal(r.originalTargetPages, 32768n);
    assert.equal(r.populatedPagesBefore, before.populatedPages);
    const used = before.populatedPages - before.guestFreePages;
    assert.ok(r.targetPages >= used && r.targetPages <= (used * 12n) / 10n, `target ${r.targetPages} for ${used} used pages`);
    assert.ok(r.populatedPagesAfter <= r.targetPages + BigInt(BATCH), `populated ${r.populatedPagesAfter}, target ${r.targetPages}`);
    assert.equal(r.releasedPages, r.populatedPagesBefore - r.populatedPagesAfter);
    // About the free half went back to the hypervisor (less the headroom).
    assert.ok(r.releasedPages >= (32768n * 35n) / 100n && r.releasedPages <= 32768n / 2n, `released ${r.releasedPages}`);
    assert.equal(compacted.memory?.frozen, true);
    assert.equal(compacted.memory?.frozenBy, 'm-1');
    assert.equal(compacted.memory?.targetPages, r.targetPages);

    const host = await stockDriver.domainInfo(halfFree);
    assert.equal(BigInt(host.nrPages), r.populatedPagesAfter, 'the hypervisor sees the pages gone');
  });

  it('answers a retried compaction with the first result', async () => {
    assert.deepEqual(await a.compact({ domid: halfFree, fence: fence('m-1', 1) }), compacted);
  });

  it('keeps the balloon frozen: a target written by anyone else is put back', async () => {
    const held = compacted.result!.targetPages;
    await stockDriver.xenstoreWrite(xsPaths.memoryTarget(halfFree), String(32768 * 4));
    const m = await waitFor('the frozen target to be put back and the guest to settle there', async () => {
      const now = await a.memory(halfFree);
      return now.targetPages === held && now.populatedPages <= held + BigInt(BATCH) ? now : undefined;
    });
    assert.equal(m.frozenBy, 'm-1');
    assert.equal(await stockDriver.xenstoreRead(xsPaths.memoryTarget(halfFree)), String(Number(held) * 4));
  });

  it('fences the balloon to its migration', async () => {
    const other = await failure(a.compact({ domid: halfFree, fence: fence('m-9', 1) }));
    assert.equal(other.code, status.FAILED_PRECONDITION);
    assert.equal(other.reason, 'DOMAIN_HELD_BY_MIGRATION');
    assert.equal((await failure(a.freeze(halfFree, fence('m-9', 1)))).code, status.FAILED_PRECONDITION);
    assert.equal((await failure(a.restore(halfFree, fence('m-9', 1)))).code, status.FAILED_PRECONDITION);

    assert.equal((await a.freeze(halfFree, fence('m-1', 3))).frozenBy, 'm-1', 'a newer epoch is accepted');
    const stale = await failure(a.compact({ domid: halfFree, fence: fence('m-1', 2) }));
    assert.equal(stale.code, status.ABORTED);
    assert.equal(stale.reason, 'FENCE_STALE_EPOCH');
    assert.equal((await failure(a.unfreeze(halfFree, fence('m-1', 2)))).code, status.ABORTED);
  });

  it('restores the original target and the guest deflates back', async () => {
    const restored = await a.restore(halfFree, fence('m-1', 3));
    assert.equal(restored.targetPages, 32768n);
    assert.equal(restored.frozen, false);
    await waitFor('the guest to deflate', async () => (await a.memory(halfFree)).populatedPages === 32768n);
    const again = await a.restore(halfFree, fence('m-1', 3));
    assert.equal(again.targetPages, 32768n, 'a retried restore sets the same target');
    assert.equal((await a.memory(halfFree)).frozen, false);
  });

  it('gives up without failing when the guest has no free memory', async () => {
    await reported(a, full);
    for (const [migrationId, onTimeout] of [
      ['m-2', CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_CONTINUE],
      ['m-3', CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL],
    ] as const) {
      const { result, memory } = await a.compact({ domid: full, fence: fence(migrationId, 1), onTimeout });
      assert.equal(result?.reached, false);
      assert.equal(result?.shortfall, CompactionShortfall.COMPACTION_SHORTFALL_NOTHING_TO_RELEASE);
      assert.match(result!.reason, /nothing to release/);
      assert.equal(result?.releasedPages, 0n);
      assert.equal(memory?.populatedPages, 16384n);
      assert.equal(memory?.targetPages, 16384n, 'the target is left alone');
      assert.equal(memory?.frozenBy, migrationId);
      assert.equal((await a.unfreeze(full, fence(migrationId, 1))).frozen, false);
    }
  });

  it('refuses bad requests with clear statuses', async () => {
    const cases: Array<[string, () => Promise<unknown>, number, string]> = [
      ['compact without a fence', () => a.compact({ domid: halfFree }), status.INVALID_ARGUMENT, 'FENCE_REQUIRED'],
      ['compact with epoch 0', () => a.compact({ domid: halfFree, fence: fence('m-4', 0) }), status.INVALID_ARGUMENT, 'FENCE_INVALID'],
      ['negative headroom', () => a.compact({ domid: halfFree, fence: fence('m-4', 1), headroomFraction: -1 }), status.INVALID_ARGUMENT, 'INVALID_HEADROOM'],
      ['huge settle timeout', () => a.compact({ domid: halfFree, fence: fence('m-4', 1), settleTimeoutMs: 10n ** 12n }), status.INVALID_ARGUMENT, 'INVALID_SETTLE_TIMEOUT'],
      ['unknown timeout action', () => a.compact({ domid: halfFree, fence: fence('m-4', 1), onTimeout: 7 as CompactionTimeoutAction }), status.INVALID_ARGUMENT, 'INVALID_TIMEOUT_ACTION'],
      ['compact of no domain', () => a.compact({ domid: 4242, fence: fence('m-4', 1) }), status.NOT_FOUND, 'DOMAIN_NOT_FOUND'],
      ['memory of no domain', () => a.memory(4242), status.NOT_FOUND, 'DOMAIN_NOT_FOUND'],
      ['freeze without a fence', () => a.freeze(halfFree, undefined), status.INVALID_ARGUMENT, 'FENCE_REQUIRED'],
      ['restore above static-max', () => a.restore(halfFree, fence('m-4', 1), 40_000n), status.INVALID_ARGUMENT, 'TARGET_ABOVE_STATIC_MAX'],
    ];
    for (const [what, request, code, reason] of cases) {
      const f = await failure(request());
      assert.equal(f.code, code, `${what}: ${f.message}`);
      assert.equal(f.reason, reason, `${what}: ${f.message}`);
    }
    assert.equal((await a.memory(halfFree)).frozen, false, 'no refused request froze the balloon');
  });

  it('reports a settle timeout and keeps the balloon where it got (continue)', async () => {
    const before = await reported(b, stuck);
    assert.ok(before.guestFreePages > 0n);
    const { result, memory } = await b.compact({ domid: stuck, fence: fence('m-5', 1), settleTimeoutMs: 500n });
    assert.equal(result?.reached, false);
    assert.equal(result?.shortfall, CompactionShortfall.COMPACTION_SHORTFALL_TIMEOUT);
    assert.match(result!.reason, /settle timeout/);
    assert.equal(result?.releasedPages, 0n);
    assert.ok(result!.targetPages < 16384n);
    assert.equal(memory?.frozenBy, 'm-5');
    assert.equal(memory?.targetPages, memory?.populatedPages, 'the balloon is held where the guest got to');
    assert.equal((await b.unfreeze(stuck, fence('m-5', 1))).frozen, false);
  });

  it('fails a compaction that falls short when asked to, and puts the target back', async () => {
    const compaction = b.compact({
      domid: stuck,
      fence: fence('m-6', 1),
      settleTimeoutMs: 60_000n,
      onTimeout: CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL,
    });
    const f = await failure(compaction);
    assert.equal(f.code, status.DEADLINE_EXCEEDED, f.message);
    assert.equal(f.reason, 'COMPACTION_NO_BALLOON_DRIVER');
    const m = await b.memory(stuck);
    assert.equal(m.frozen, false);
    assert.equal(m.targetPages, 16384n);
    const retry = await failure(b.compact({ domid: stuck, fence: fence('m-6', 1), onTimeout: CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL }));
    assert.equal(retry.reason, 'COMPACTION_NO_BALLOON_DRIVER', 'a retry gets the first answer');
  });

  it('cancels a running compaction cleanly when the migration restores the balloon', async () => {
    const logger = createLogger('balloon-manager-test', { host: 'bal-b' });
    logger.level = 'error'; // the cancelled Compact is expected
    patient = new BalloonManager({ driver: noBalloonDriver, logger, settings: { noProgressMs: 600_000 } });
    patientServer = await startBalloonManagerServer(patient, '127.0.0.1:0', logger);
    const p = balloon(patientServer.address);
    try {
      const cancelled = failure(p.compact({ domid: stuck, fence: fence('m-7', 1), settleTimeoutMs: 600_000n }));
      await waitFor('the compaction target to be set', async () => {
        const m = await p.memory(stuck);
        return m.frozenBy === 'm-7' && m.targetPages < m.populatedPages;
      });
      const restored = await p.restore(stuck, fence('m-7', 1));
      assert.equal(restored.frozen, false);
      assert.equal(restored.targetPages, 16384n);
      const f = await cancelled;
      assert.equal(f.code, status.CANCELLED);
      assert.equal(f.reason, 'COMPACTION_CANCELLED');
      assert.equal(await noBalloonDriver.xenstoreRead(xsPaths.memoryTarget(stuck)), String(16384 * 4));
    } finally {
      p.close();
    }
  });
});
