// Real processes end to end: two emulated hosts; on the source a memory-tracker and a page-streamer
// (which takes send sets from the tracker over gRPC), on the target a page-streamer. A running
// guest is copied round by round, then suspended, the final round and the vCPU state sent, and the
// memory digests compared; then the target's streamer is killed in the middle of a round.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { PAGE_SIZE, xsPaths } from '@ferry/hypervisor';
import {
  BatchRejectReason,
  DigestAlgorithm,
  MemoryTrackerClient,
  MigrationPolicy,
  PageStreamerClient,
  PayloadCompression,
} from '@ferry/proto';
import { call, GRPC_MESSAGE_LIMITS, reasonOf } from '@ferry/runtime';
import { waitFor } from '@ferry/testing';
import { startEmuHosts, type TestHosts } from '../../../libs/tracker/test/support/emu';
import { startService, type ServiceProcess } from '../../memory-tracker/test/support/service-process';

const GUEST_PAGES = (32 * 1024 * 1024) / PAGE_SIZE;

describe('page-streamer service processes', () => {
  let env: TestHosts;
  const processes: ServiceProcess[] = [];
  let tracker: MemoryTrackerClient;
  let sourceStreamer: PageStreamerClient;
  let targetStreamer: PageStreamerClient;
  let targetProcess: ServiceProcess;

  before(async () => {
    env = await startEmuHosts(['ps-a', 'ps-b'], 1024 * 1024 * 1024);
    const [a, b] = env.hosts;
    const trackerProcess = await startService('memory-tracker', { FERRY_EMU_SOCKET: a.process.socketPath, FERRY_HOST: 'ps-a' });
    processes.push(trackerProcess);
    const sourceProcess = await startService('page-streamer', {
      FERRY_EMU_SOCKET: a.process.socketPath,
      FERRY_HOST: 'ps-a',
      FERRY_MEMORY_TRACKER: String(trackerProcess.ready.address),
    });
    processes.push(sourceProcess);
    targetProcess = await startService('page-streamer', { FERRY_EMU_SOCKET: b.process.socketPath, FERRY_HOST: 'ps-b' });
    processes.push(targetProcess);
    tracker = new MemoryTrackerClient(String(trackerProcess.ready.address), credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
    sourceStreamer = new PageStreamerClient(String(sourceProcess.ready.address), credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
    targetStreamer = new PageStreamerClient(String(targetProcess.ready.address), credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
  });

  after(async () => {
    tracker?.close();
    sourceStreamer?.close();
    targetStreamer?.close();
    for (const p of processes.reverse()) await p.stop();
    await env?.stop();
  });

  it('logs ready with the gRPC address and the data endpoint', () => {
    assert.match(String(targetProcess.ready.address), /^127\.0\.0\.1:\d+$/);
    assert.match(String(targetProcess.ready.data_endpoint), /^127\.0\.0\.1:\d+$/);
  });

  async function migrationSetup(name: string, workload: 'kv' | 'memtest') {
    const [a, b] = env.hosts;
    const domid = await a.driver.createDomain({
      name,
      maxPages: GUEST_PAGES,
      workload: workload === 'kv' ? { kind: 'kv', seed: 2, freeFraction: 0.4 } : { kind: 'memtest', seed: 2, freeFraction: 0.3, writeRate: 2000, pattern: 'random' },
    });
    // A kv guest publishes its service address once its store has filled its memory.
    if (workload === 'kv') await waitFor('the guest to boot', () => a.driver.xenstoreRead(xsPaths.serviceAddress(domid)).then((v) => v !== null));
    const info = await a.driver.domainInfo(domid);
    const targetDomid = await b.driver.createRestoreDomain({ name, maxPages: info.maxPages, vcpus: info.vcpus });
    const fence = { migrationId: `svc-${name}`, epoch: 3n };
    const token = randomBytes(24).toString('base64');
    const opened = await call(targetStreamer.openReceiveSession, targetStreamer, { fence, domid: targetDomid, token });
    assert.equal(opened.resumed, false);
    await call(tracker.startTracking, tracker, { fence, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17 } });
    const sendRound = (round: number, bandwidthBps = 0n) =>
      call(
        sourceStreamer.sendRound,
        sourceStreamer,
        { fence, round, domid, peerEndpoint: opened.dataEndpoint, token, bandwidthBps, compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE, sendZeroPages: false, includeState: false, prepareFinal: false },
        120_000,
      );
    return { domid, targetDomid, fence, token, endpoint: opened.dataEndpoint, sendRound };
  }

  it('copies a running guest round by round, then the final round and the state; the digests match', async () => {
    const [a] = env.hosts;
    const m = await migrationSetup('moving', 'memtest');
    let round = 0;
    await call(tracker.prepareRound, tracker, { fence: m.fence, round, final: false, takeSendSet: false });
    const r0 = await m.sendRound(round);
    assert.equal(r0.round, 0);
    assert.ok(r0.pagesSent > 0n && r0.batches >= r0.pagesSent / 1024n);
    assert.ok(r0.throughputBps > 0n);
    for (round = 1; round <= 3; round++) {
      const plan = await call(tracker.prepareRound, tracker, { fence: m.fence, round, final: false, takeSendSet: false });
      const sent = await m.sendRound(round);
      assert.equal(sent.pagesSent + sent.absentPages, plan.pagesToSend);
    }
    await a.driver.suspend(m.domid);
    const final = await call(tracker.prepareRound, tracker, { fence: m.fence, round, final: true, takeSendSet: false });
    assert.equal(final.pagesDeferred, 0n);
    await m.sendRound(round);
    const state = await call(sourceStreamer.sendState, sourceStreamer, { fence: m.fence, domid: m.domid, peerEndpoint: m.endpoint, token: m.token });
    assert.ok(state.stateBytes > 0n);

    const received = (await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId })).status!;
    assert.equal(received.lastRoundComplete, round);
    assert.equal(received.stateReceived, true);
    assert.equal(received.rejectedBatches, 0n);
    assert.equal(received.epoch, 3n);

    await assert.rejects(
      call(sourceStreamer.memoryDigest, sourceStreamer, { domid: 999, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256 }),
      (err: unknown) => (err as ServiceError).code === status.NOT_FOUND,
    );
    const [source, target] = await Promise.all([
      call(sourceStreamer.memoryDigest, sourceStreamer, { domid: m.domid, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256 }),
      call(targetStreamer.memoryDigest, targetStreamer, { domid: m.targetDomid, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_UNSPECIFIED }),
    ]);
    assert.equal(source.digest.length, 32);
    assert.equal(target.pageCount, source.pageCount);
    assert.equal(target.digest.toString('hex'), source.digest.toString('hex'));

    const closed = await call(targetStreamer.closeSession, targetStreamer, { fence: m.fence });
    assert.equal(closed.closed, true);
    assert.equal(closed.status?.stateReceived, true);
    assert.equal((await call(targetStreamer.closeSession, targetStreamer, { fence: m.fence })).closed, false);
    assert.equal((await call(tracker.stopTracking, tracker, { fence: m.fence })).stopped, true);
  });

  it('sends the final round in one call: the tracker prepares it and hands over its send set, the state follows the pages', async () => {
    const [a] = env.hosts;
    const m = await migrationSetup('one-call', 'memtest');
    await call(tracker.prepareRound, tracker, { fence: m.fence, round: 0, final: false, takeSendSet: false });
    await m.sendRound(0);
    await call(tracker.prepareRound, tracker, { fence: m.fence, round: 1, final: false, takeSendSet: false });
    await a.driver.suspend(m.domid);
    const res = await call(
      sourceStreamer.sendRound,
      sourceStreamer,
      { fence: m.fence, round: 1, domid: m.domid, peerEndpoint: m.endpoint, token: m.token, bandwidthBps: 0n, compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE, sendZeroPages: false, includeState: true, prepareFinal: true },
      120_000,
    );
    // The tracker's counts come back to the caller; the send set's bitmap stays on the host.
    assert.equal(res.prepared?.round, 1);
    assert.equal(res.prepared?.sendSet, undefined);
    assert.equal(res.pagesSent + res.absentPages, res.prepared?.pagesToSend);
    assert.ok(res.stateBytes > 0n);
    // The round's send set was taken with it: asking again gives the same pages.
    const set = await call(tracker.takeSendSet, tracker, { migrationId: m.fence.migrationId, round: 1 });
    assert.equal(set.final, true);
    assert.equal(set.pageCount, res.prepared?.pagesToSend);

    const received = (await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId })).status!;
    assert.equal(received.lastRoundComplete, 1);
    assert.equal(received.stateReceived, true);
    const [source, target] = await Promise.all([
      call(sourceStreamer.memoryDigest, sourceStreamer, { domid: m.domid, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256 }),
      call(targetStreamer.memoryDigest, targetStreamer, { domid: m.targetDomid, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256 }),
    ]);
    assert.equal(target.digest.toString('hex'), source.digest.toString('hex'));
    await call(targetStreamer.closeSession, targetStreamer, { fence: m.fence });
    await call(tracker.stopTracking, tracker, { fence: m.fence });
  });

  it('refuses a running domain for a digest, and a bad token with ABORTED', async () => {
    const m = await migrationSetup('refused', 'kv');
    await assert.rejects(
      call(sourceStreamer.memoryDigest, sourceStreamer, { domid: m.domid, algorithm: DigestAlgorithm.DIGEST_ALGORITHM_SHA256 }),
      (err: unknown) => (err as ServiceError).code === status.FAILED_PRECONDITION && reasonOf(err) === 'DOMAIN_RUNNING',
    );
    await call(tracker.prepareRound, tracker, { fence: m.fence, round: 0, final: false, takeSendSet: false });
    await assert.rejects(
      call(sourceStreamer.sendRound, sourceStreamer, {
        fence: m.fence,
        round: 0,
        domid: m.domid,
        peerEndpoint: m.endpoint,
        token: randomBytes(16).toString('hex'),
        bandwidthBps: 0n,
        compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
        sendZeroPages: false,
        includeState: false,
        prepareFinal: false,
      }),
      (err: unknown) => (err as ServiceError).code === status.ABORTED && reasonOf(err) === 'BAD_TOKEN',
    );
    const s = (await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId })).status!;
    assert.equal(s.rejections.at(-1)?.reason, BatchRejectReason.BATCH_REJECT_REASON_BAD_TOKEN);
    await assert.rejects(
      call(targetStreamer.openReceiveSession, targetStreamer, { fence: { migrationId: 'short', epoch: 1n }, domid: m.targetDomid, token: 'abc' }),
      (err: unknown) => (err as ServiceError).code === status.INVALID_ARGUMENT && reasonOf(err) === 'BAD_TOKEN',
    );
    await call(tracker.stopTracking, tracker, { fence: m.fence });
    await call(targetStreamer.closeSession, targetStreamer, { fence: m.fence });
  });

  it('stops streaming when the caller gives up on SendRound (its deadline passed)', async () => {
    // A kv guest holds megabytes of data from boot on: at 2 Mbit/s its round 0 takes over a minute.
    const m = await migrationSetup('abandoned', 'kv');
    await call(tracker.prepareRound, tracker, { fence: m.fence, round: 0, final: false, takeSendSet: false });
    const request = { fence: m.fence, round: 0, domid: m.domid, peerEndpoint: m.endpoint, token: m.token, bandwidthBps: 2_000_000n, compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE, sendZeroPages: false, includeState: false, prepareFinal: false };
    await assert.rejects(call(sourceStreamer.sendRound, sourceStreamer, request, 1500), (err: unknown) => (err as ServiceError).code === status.DEADLINE_EXCEEDED);
    // The source streamer notices the cancellation and drops the data connection.
    await waitFor('the data connection to go', async () => {
      const s = await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId });
      return !s.status!.connected && s.status!.wireBytes > 0n;
    });
    const s = (await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId })).status!;
    assert.equal(s.lastRoundComplete, undefined);
    await call(tracker.stopTracking, tracker, { fence: m.fence });
    await call(targetStreamer.closeSession, targetStreamer, { fence: m.fence });
    await call(sourceStreamer.closeSession, sourceStreamer, { fence: m.fence });
  });

  it('fails SendRound with UNAVAILABLE, promptly, when the receiving streamer is killed mid-round', async () => {
    const m = await migrationSetup('orphaned', 'kv');
    await call(tracker.prepareRound, tracker, { fence: m.fence, round: 0, final: false, takeSendSet: false });
    // 2 Mbit/s: the round would take over a minute; the receiver dies long before that.
    const sending = m.sendRound(0, 2_000_000n);
    const failed = assert.rejects(sending, (err: unknown) => {
      const e = err as ServiceError;
      assert.equal(e.code, status.UNAVAILABLE, e.details);
      assert.equal(reasonOf(err), 'PEER_DISCONNECTED', e.details);
      return true;
    });
    await waitFor('the sender to connect', async () => {
      const s = await call(targetStreamer.getReceiveStatus, targetStreamer, { migrationId: m.fence.migrationId });
      return s.status!.connected && s.status!.wireBytes > 0n;
    });
    const killed = await targetProcess.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    await failed;
    await call(tracker.stopTracking, tracker, { fence: m.fence });
  });

  it('exits 0 on SIGTERM', async () => {
    const sourceProcess = processes[1];
    assert.deepEqual(await sourceProcess.stop('SIGTERM'), { code: 0, signal: null });
  });
});

