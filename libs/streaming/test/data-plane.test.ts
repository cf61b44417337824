// The data plane between two real emulated hosts: page encodings (ZERO, ABSENT), refusals (a
// corrupted batch, a bad token, a stale epoch, an unknown session), the bandwidth cap's
// accounting, senders and receivers that go away mid-round, and xen-legacy's to_skip.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { bitmapCount, bitmapPfns, PAGE_SIZE, pagesToKiB, xsPaths } from '@ferry/hypervisor';
import { PageBatchFlag, PageEncoding, BatchRejectReason, ChecksumAlgorithm, PayloadCompression } from '@ferry/proto';
import { FerryError } from '@ferry/runtime';
import { BatchEncoder, DEFAULT_SENDER_TIMEOUTS, encodeBatchHeaderFrame, openSession, type BatchHeader, type SenderDeps } from '@ferry/streaming';
import { waitFor } from '@ferry/testing';
import { newToken, startStreamerPair, type StreamerPair } from './support/pair';

const GUEST_PAGES = (16 * 1024 * 1024) / PAGE_SIZE;
const END = PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM;
const NO_COMPRESSION = PayloadCompression.PAYLOAD_COMPRESSION_UNSPECIFIED;

function expectError(code: status, reason: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${String(err)}`);
    assert.equal(err.code, code, `${err.reason}: ${err.message}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('the page data plane', () => {
  let pair: StreamerPair;
  /** A running guest on the source. */
  let domid: number;
  let deps: SenderDeps;
  let seq = 0;
  const mig = () => `mig-dp-${++seq}`;

  before(async () => {
    pair = await startStreamerPair();
    const a = pair.hosts.hosts[0];
    // A kv guest: its store fills half its memory with data from boot on, so rounds carry real payload.
    domid = await a.driver.createDomain({
      name: 'writer',
      maxPages: GUEST_PAGES,
      workload: { kind: 'kv', seed: 3, freeFraction: 0.5 },
    });
    // The guest publishes its service address once its store has filled its memory.
    await waitFor('the guest to boot', () => a.driver.xenstoreRead(xsPaths.serviceAddress(domid)).then((v) => v !== null));
    deps = { driver: a.driver, sendSets: { take: () => Promise.reject(new Error('unused')), prepareFinal: () => Promise.reject(new Error('unused')), close: () => undefined }, hostName: 'src', logger: pair.logger, timeouts: DEFAULT_SENDER_TIMEOUTS };
  });

  after(async () => {
    await pair?.stop();
  });

  /** A paused receiving domain on the target with an open session. */
  async function receiver(name: string, epoch = 1n) {
    const b = pair.hosts.hosts[1];
    const targetDomid = await b.driver.createRestoreDomain({ name, maxPages: GUEST_PAGES, vcpus: 1 });
    const fence = { migrationId: mig(), epoch };
    const token = newToken();
    const opened = await pair.target.openReceiveSession(fence, targetDomid, token);
    return { fence, token, targetDomid, endpoint: opened.dataEndpoint };
  }

  async function trackRound0(fence: { migrationId: string; epoch: bigint }, policy: 'xen-4.17' | 'xen-legacy' = 'xen-4.17', source = domid) {
    await pair.tracker.startTracking(fence, source, { policy });
    return pair.tracker.prepareRound(fence, 0, false);
  }

  it('refuses a batch corrupted on the wire with CHECKSUM_MISMATCH and writes nothing of it', async () => {
    const b = pair.hosts.hosts[1];
    const r = await receiver('corrupt');
    const pfns = bitmapPfns(await pair.hosts.hosts[0].driver.p2m(domid)).slice(0, 64);
    const encoder = new BatchEncoder(deps.driver, domid, r.fence.migrationId, { compression: NO_COMPRESSION, checksum: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32 });
    const batch = await encoder.encode(0, 1, pfns, END);
    assert.ok(batch.rawPages > 0);
    const corrupted = Buffer.from(batch.payload);
    corrupted[corrupted.length - 100] ^= 0x40;
    batch.release();

    const conn = await openSession(deps, { ...r.fence, peerEndpoint: r.endpoint, token: r.token });
    await conn.write(batch.frame);
    await conn.write(corrupted);
    await assert.rejects(conn.nextAck(), expectError(status.DATA_LOSS, 'CHECKSUM_MISMATCH', /^batch 1 of round 0: checksum mismatch/));

    const s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.rejectedBatches, 1);
    assert.deepEqual(s.rejections.map((x) => [x.sequence, x.round, x.reason]), [[1, 0, BatchRejectReason.BATCH_REJECT_REASON_CHECKSUM_MISMATCH]]);
    assert.equal(s.pagesWritten, 0);
    assert.equal(s.lastRoundComplete, null);
    assert.equal((await b.driver.domainInfo(r.targetDomid)).nrPages, 0, 'nothing of the refused batch was written');

    // The session survives the refusal: the same batch, intact, is accepted on a new connection.
    const intact = await encoder.encode(0, 1, pfns, END);
    const retry = await openSession(deps, { ...r.fence, peerEndpoint: r.endpoint, token: r.token });
    await retry.write(intact.frame);
    await retry.write(intact.payload);
    assert.equal((await retry.nextAck()).sequence, 1n);
    retry.close();
    assert.equal(pair.target.getReceiveStatus(r.fence.migrationId).pagesWritten, 64);
    assert.equal((await b.driver.domainInfo(r.targetDomid)).nrPages, 64);
  });

  it('refuses malformed batches: a pfn beyond the domain, a sequence gap, a payload that does not fit its pages', async () => {
    const r = await receiver('malformed');
    const header = (over: Partial<BatchHeader>): BatchHeader => ({
      migrationId: r.fence.migrationId,
      round: 2,
      sequence: 1,
      pfnCount: 1,
      flags: END,
      pfns: [1],
      encodings: null,
      compression: 0,
      payloadLength: PAGE_SIZE,
      checksumAlgorithm: 0,
      checksum: new Uint8Array(0),
      ...over,
    });
    const attempt = async (h: BatchHeader, payloadBytes: number) => {
      const conn = await openSession(deps, { ...r.fence, peerEndpoint: r.endpoint, token: r.token });
      await conn.write(encodeBatchHeaderFrame(h));
      if (payloadBytes > 0) await conn.write(Buffer.alloc(payloadBytes, 1));
      const ack = await conn.nextAck();
      conn.close();
      return ack;
    };
    await assert.rejects(attempt(header({ pfns: [GUEST_PAGES] }), PAGE_SIZE), expectError(status.FAILED_PRECONDITION, 'PFN_OUT_OF_RANGE', /^batch 1 of round 2: pfn 4096 is outside/));
    await assert.rejects(attempt(header({ sequence: 2 }), PAGE_SIZE), expectError(status.DATA_LOSS, 'MALFORMED', /sequence 2 where 1 was due/));
    await assert.rejects(attempt(header({ payloadLength: 100 }), 100), expectError(status.DATA_LOSS, 'MALFORMED', /payload_length 100 for 1 raw pages/));
    await assert.rejects(attempt(header({ pfnCount: 2, pfns: [1, 1], payloadLength: 2 * PAGE_SIZE }), 2 * PAGE_SIZE), expectError(status.DATA_LOSS, 'MALFORMED', /appears more than once/));
    const s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.deepEqual(
      s.rejections.map((x) => x.reason),
      [
        BatchRejectReason.BATCH_REJECT_REASON_PFN_OUT_OF_RANGE,
        BatchRejectReason.BATCH_REJECT_REASON_MALFORMED,
        BatchRejectReason.BATCH_REJECT_REASON_MALFORMED,
        BatchRejectReason.BATCH_REJECT_REASON_MALFORMED,
      ],
    );
    assert.equal(s.pagesWritten, 0);
    // Nothing was written, and the session still takes a sound batch.
    assert.equal((await attempt(header({}), PAGE_SIZE)).sequence, 1n);
    assert.equal(pair.target.getReceiveStatus(r.fence.migrationId).pagesWritten, 1);
  });

  it('MemoryDigest is SHA-256 over (pfn as 8 bytes little-endian, page) of every populated page, in pfn order', async () => {
    const b = pair.hosts.hosts[1];
    const r = await receiver('digested');
    const pfns = [7, 3, 1000, 4095];
    const pages = Buffer.alloc(pfns.length * PAGE_SIZE);
    for (let i = 0; i < pfns.length; i++) pages.fill(i + 1, i * PAGE_SIZE, i * PAGE_SIZE + 100);
    await b.driver.writePages(r.targetDomid, pfns, pages);
    const expected = createHash('sha256');
    for (const pfn of [...pfns].sort((x, y) => x - y)) {
      const pfnBytes = Buffer.alloc(8);
      pfnBytes.writeBigUInt64LE(BigInt(pfn));
      expected.update(pfnBytes);
      expected.update(pages.subarray(pfns.indexOf(pfn) * PAGE_SIZE, (pfns.indexOf(pfn) + 1) * PAGE_SIZE));
    }
    const digest = await pair.target.memoryDigest(r.targetDomid);
    assert.equal(digest.pageCount, 4);
    assert.equal(digest.digest.toString('hex'), expected.digest('hex'));
    await assert.rejects(pair.source.memoryDigest(domid), expectError(status.FAILED_PRECONDITION, 'DOMAIN_RUNNING'));
  });

  it('reopening a session: same epoch keeps it, a higher epoch replaces the token, a lower one is ABORTED', async () => {
    const r = await receiver('reopened', 2n);
    const again = await pair.target.openReceiveSession(r.fence, r.targetDomid, r.token);
    assert.deepEqual([again.resumed, again.dataEndpoint], [true, r.endpoint]);
    await assert.rejects(pair.target.openReceiveSession(r.fence, r.targetDomid, newToken()), expectError(status.FAILED_PRECONDITION, 'SESSION_TOKEN_MISMATCH'));
    await assert.rejects(pair.target.openReceiveSession({ ...r.fence, epoch: 1n }, r.targetDomid, r.token), expectError(status.ABORTED, 'STALE_EPOCH'));
    await assert.rejects(pair.target.openReceiveSession({ migrationId: 'other', epoch: 1n }, r.targetDomid, r.token), expectError(status.FAILED_PRECONDITION, 'DOMAIN_RECEIVING'));
    await assert.rejects(pair.target.openReceiveSession({ migrationId: 'other', epoch: 1n }, 9999, r.token), expectError(status.NOT_FOUND, 'DOMAIN_NOT_FOUND'));
    await assert.rejects(pair.target.openReceiveSession({ migrationId: 'other', epoch: 1n }, 9999, 'short'), expectError(status.INVALID_ARGUMENT, 'BAD_TOKEN'));

    const newer = { ...r.fence, epoch: 3n };
    const token = newToken();
    assert.equal((await pair.target.openReceiveSession(newer, r.targetDomid, token)).status.epoch, 3n);
    const hello = (t: string, epoch: bigint) =>
      openSession(deps, { migrationId: r.fence.migrationId, epoch, peerEndpoint: r.endpoint, token: t, });
    await assert.rejects(hello(r.token, 3n), expectError(status.ABORTED, 'BAD_TOKEN'));
    await assert.rejects(hello(token, 2n), expectError(status.ABORTED, 'STALE_EPOCH'));
    (await hello(token, 3n)).close();
    assert.equal(pair.target.closeSession(newer).closed, true);
    assert.equal(pair.target.closeSession(newer).closed, false);
    assert.throws(() => pair.target.getReceiveStatus(r.fence.migrationId), expectError(status.NOT_FOUND, 'UNKNOWN_SESSION'));
  });

  it('refuses a bad token, a stale epoch and an unknown session at the handshake', async () => {
    const r = await receiver('handshake', 2n);
    await trackRound0(r.fence);
    const send = (over: Partial<{ token: string; epoch: bigint; migrationId: string; peerEndpoint: string }>) =>
      pair.source.sendRound({
        fence: { migrationId: over.migrationId ?? r.fence.migrationId, epoch: over.epoch ?? r.fence.epoch },
        round: 0,
        domid,
        peerEndpoint: over.peerEndpoint ?? r.endpoint,
        token: over.token ?? r.token,
        bandwidthBps: 0,
        compression: NO_COMPRESSION,
      });
    // Epoch 1 is older than the session's epoch 2 (the source has seen no higher one, so it tries).
    await assert.rejects(send({ epoch: 1n }), expectError(status.ABORTED, 'STALE_EPOCH', /^the handshake: epoch 1 is older/));
    let s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.rejections.at(-1)?.reason, BatchRejectReason.BATCH_REJECT_REASON_STALE_EPOCH);

    await assert.rejects(send({ token: newToken() }), expectError(status.ABORTED, 'BAD_TOKEN', /^the handshake: the session token does not match/));
    s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.rejections.at(-1)?.reason, BatchRejectReason.BATCH_REJECT_REASON_BAD_TOKEN);
    assert.equal(s.rejectedBatches, 0, 'a refused handshake is not a refused batch');
    assert.equal(s.pagesWritten, 0);

    // Now the source has seen epoch 2: a call with epoch 1 is refused before it connects.
    await assert.rejects(send({ epoch: 1n }), expectError(status.ABORTED, 'STALE_EPOCH', /accepted epoch 2/));
    await assert.rejects(send({ peerEndpoint: '127.0.0.1:1' }), expectError(status.UNAVAILABLE, 'PEER_UNREACHABLE'));
    await pair.tracker.stopTracking(r.fence);

    const unknown = { migrationId: 'mig-nobody', epoch: 1n };
    await trackRound0(unknown);
    await assert.rejects(send({ migrationId: unknown.migrationId, epoch: 1n }), expectError(status.NOT_FOUND, 'UNKNOWN_SESSION'));
    await pair.tracker.stopTracking(unknown);
  });

  it('keeps to the bandwidth cap: bytes granted by the token bucket, and time at least what the cap requires', async () => {
    const r = await receiver('capped');
    const plan = await trackRound0(r.fence);
    const capBps = 40_000_000; // 5 MB/s
    const stats = await pair.source.sendRound({
      fence: r.fence,
      round: 0,
      domid,
      peerEndpoint: r.endpoint,
      token: r.token,
      bandwidthBps: capBps,
      compression: NO_COMPRESSION,
    });
    await pair.tracker.stopTracking(r.fence);
    assert.equal(stats.pagesSent + stats.absentPages, plan.pagesToSend);
    const throttle = stats.throttle!;
    assert.ok(throttle, 'a capped round reports its bucket');
    assert.equal(throttle.bytesPerSecond, capBps / 8);
    // Every byte after the hello went through the bucket.
    const hello = stats.wireBytes - throttle.grantedBytes;
    assert.ok(hello > 0 && hello < 512, `${hello} bytes outside the bucket`);
    assert.ok(throttle.grantedBytes > 4 * throttle.burstBytes, 'the round is long enough for the cap to matter');
    // The cap can only make a round slower than burst + rate × time allows; a busy machine makes it slower still.
    const minimumMs = ((throttle.grantedBytes - throttle.burstBytes) * 1000) / throttle.bytesPerSecond;
    assert.ok(stats.elapsedMs >= minimumMs * 0.99, `${stats.elapsedMs} ms for ${throttle.grantedBytes} bytes; the cap needs ${minimumMs} ms`);
    assert.ok(throttle.throttledMs > 0, 'the sender waited for tokens');
    assert.ok(stats.throughputBps <= capBps * (1 + throttle.burstBytes / throttle.grantedBytes) * 1.01);
  });

  it('a sender that disappears mid-round leaves the session intact; the retried round completes it', async () => {
    const b = pair.hosts.hosts[1];
    const r = await receiver('resumable');
    await trackRound0(r.fence);
    const pfns = bitmapPfns(await pair.hosts.hosts[0].driver.p2m(domid)).slice(0, 512);
    const encoder = new BatchEncoder(deps.driver, domid, r.fence.migrationId, { compression: NO_COMPRESSION, checksum: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32 });
    const conn = await openSession(deps, { ...r.fence, peerEndpoint: r.endpoint, token: r.token });
    const batch = await encoder.encode(0, 1, pfns, 0);
    await conn.write(batch.frame);
    await conn.write(batch.payload);
    await waitFor('the first batch written', () => pair.target.getReceiveStatus(r.fence.migrationId).pagesWritten === 512);
    conn.fail(new Error('the sender crashed'));
    await waitFor('the receiver to notice', () => !pair.target.getReceiveStatus(r.fence.migrationId).connected);
    let s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.lastRoundComplete, null);
    assert.equal(s.rejectedBatches, 0);

    const reopened = await pair.target.openReceiveSession(r.fence, r.targetDomid, r.token);
    assert.equal(reopened.resumed, true);
    assert.equal(reopened.status.pagesWritten, 512, 'reopening keeps what was received');
    const stats = await pair.source.sendRound({ fence: r.fence, round: 0, domid, peerEndpoint: r.endpoint, token: r.token, bandwidthBps: 0, compression: NO_COMPRESSION });
    s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.lastRoundComplete, 0);
    assert.equal(s.pagesWritten, 512 + stats.pagesSent);
    assert.equal((await b.driver.domainInfo(r.targetDomid)).nrPages, stats.pagesSent);
    await pair.tracker.stopTracking(r.fence);
  });

  it('a receiver that goes away mid-round fails SendRound with UNAVAILABLE', async () => {
    const r = await receiver('vanishing');
    await trackRound0(r.fence);
    // At 2 Mbit/s the guest's megabytes of data take far longer than the receiver lives.
    const sending = pair.source.sendRound({ fence: r.fence, round: 0, domid, peerEndpoint: r.endpoint, token: r.token, bandwidthBps: 2_000_000, compression: NO_COMPRESSION });
    const failed = assert.rejects(sending, expectError(status.UNAVAILABLE, 'PEER_DISCONNECTED'));
    await waitFor('the sender to connect', () => pair.target.getReceiveStatus(r.fence.migrationId).connected);
    pair.target.closeSession(r.fence); // drops the connection mid-round
    await failed;
    await pair.tracker.stopTracking(r.fence);
  });

  it('rounds share one data connection; after the receiver drops it, the next round connects again', async () => {
    const r = await receiver('linked');
    await trackRound0(r.fence);
    const send = (round: number) => pair.source.sendRound({ fence: r.fence, round, domid, peerEndpoint: r.endpoint, token: r.token, bandwidthBps: 0, compression: NO_COMPRESSION });
    const first = await send(0);
    for (const round of [1, 2]) {
      await pair.tracker.prepareRound(r.fence, round, false);
      await send(round);
    }
    let s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.lastRoundComplete, 2);
    assert.equal(s.connections, 1, 'three rounds, one connection');
    assert.equal(s.connected, true, 'the connection stays open between rounds');
    assert.ok(first.wireBytes > 0);

    // The receiver drops the idle connection (its session closed and reopened, as after a restart).
    pair.target.closeSession(r.fence);
    await pair.target.openReceiveSession(r.fence, r.targetDomid, r.token);
    await pair.tracker.prepareRound(r.fence, 3, false);
    // The sender learns of the drop from the socket; if the round started first, it fails with
    // UNAVAILABLE (which the coordinator retries) and the retry connects again.
    const third = await send(3).catch(async (err: unknown) => {
      expectError(status.UNAVAILABLE, 'PEER_DISCONNECTED')(err);
      return send(3);
    });
    s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.equal(s.lastRoundComplete, 3);
    assert.equal(s.connections, 1, 'the reopened session got one new connection');
    assert.equal(s.pagesReceived, third.pagesSent + third.absentPages);
    assert.equal(pair.source.closeSession(r.fence).closed, true);
    await waitFor('the closed link to go', () => !pair.target.getReceiveStatus(r.fence.migrationId).connected);
    await pair.tracker.stopTracking(r.fence);
  });

  it('ZERO pages cost a header entry, ABSENT (ballooned) pages are never sent as data nor populated on the target', async () => {
    const [a, b] = pair.hosts.hosts;
    const ballooned = await a.driver.createDomain({ name: 'ballooned', maxPages: GUEST_PAGES, workload: { kind: 'idle', seed: 1, freeFraction: 0.8 } });
    const targetPages = GUEST_PAGES / 2;
    await a.driver.xenstoreWrite(xsPaths.memoryTarget(ballooned), String(pagesToKiB(targetPages)));
    await waitFor('the balloon to inflate', async () => (await a.driver.domainInfo(ballooned)).nrPages <= targetPages);

    // One batch by hand: a page with data, a zero page and a ballooned page.
    const p2m = await a.driver.p2m(ballooned);
    const populated = bitmapPfns(p2m, GUEST_PAGES);
    const absent = [...Array(GUEST_PAGES).keys()].find((p) => !populated.includes(p))!;
    const probe = await a.driver.mapForeignPages(ballooned, populated.slice(0, 1024));
    const isZero = (i: number) => probe.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).every((x) => x === 0);
    const dataPfn = populated[[...Array(1024).keys()].find((i) => !isZero(i))!];
    const zeroPfn = populated[[...Array(1024).keys()].find((i) => isZero(i))!];
    probe.unmap();

    const r = await receiver('encodings');
    const encoder = new BatchEncoder(a.driver, ballooned, r.fence.migrationId, { compression: NO_COMPRESSION, checksum: ChecksumAlgorithm.CHECKSUM_ALGORITHM_SHA256 });
    const batch = await encoder.encode(0, 1, [dataPfn, zeroPfn, absent], END);
    assert.deepEqual([...batch.header.encodings!], [PageEncoding.PAGE_ENCODING_RAW, PageEncoding.PAGE_ENCODING_ZERO, PageEncoding.PAGE_ENCODING_ABSENT]);
    assert.equal(batch.payload.length, PAGE_SIZE, 'only the data page is in the payload');
    assert.deepEqual([batch.rawPages, batch.zeroPages, batch.absentPages], [1, 1, 1]);
    const conn = await openSession(deps, { ...r.fence, peerEndpoint: r.endpoint, token: r.token });
    await conn.write(batch.frame);
    await conn.write(batch.payload);
    await conn.nextAck();
    conn.close();
    assert.deepEqual(bitmapPfns(await b.driver.p2m(r.targetDomid)), [dataPfn, zeroPfn].sort((x, y) => x - y));
    const [src, dst] = await Promise.all([a.driver.mapForeignPages(ballooned, [dataPfn]), b.driver.mapForeignPages(r.targetDomid, [dataPfn])]);
    assert.ok(src.data.equals(dst.data), 'the data page arrived intact');
    src.unmap();
    dst.unmap();
    const s = pair.target.getReceiveStatus(r.fence.migrationId);
    assert.deepEqual([s.pagesReceived, s.pagesWritten, s.zeroPages], [3, 2, 1]);

    // The whole guest: round 0 sends its populated pages only, and the target ends up identical.
    const m = await receiver('ballooned-target');
    const plan = await trackRound0(m.fence, 'xen-4.17', ballooned);
    assert.equal(plan.pagesToSend, bitmapCount(p2m));
    const round0 = await pair.source.sendRound({ fence: m.fence, round: 0, domid: ballooned, peerEndpoint: m.endpoint, token: m.token, bandwidthBps: 0, compression: PayloadCompression.PAYLOAD_COMPRESSION_ZLIB });
    assert.equal(round0.pagesSent, plan.pagesToSend);
    assert.ok(round0.pagesSent <= targetPages);
    assert.ok(round0.wireBytes < round0.dataBytes, 'zlib shrank the payload');
    await a.driver.suspend(ballooned);
    await pair.tracker.prepareRound(m.fence, 1, true);
    await pair.source.sendRound({ fence: m.fence, round: 1, domid: ballooned, peerEndpoint: m.endpoint, token: m.token, bandwidthBps: 0, compression: NO_COMPRESSION });
    await pair.source.sendState({ fence: m.fence, domid: ballooned, peerEndpoint: m.endpoint, token: m.token });
    const [source, target] = await Promise.all([pair.source.memoryDigest(ballooned), pair.target.memoryDigest(m.targetDomid)]);
    assert.equal(target.digest.toString('hex'), source.digest.toString('hex'));
    assert.equal((await b.driver.domainInfo(m.targetDomid)).nrPages, (await a.driver.domainInfo(ballooned)).nrPages);
    await pair.tracker.stopTracking(m.fence);
    await a.driver.destroy(ballooned);
  });

  it('xen-legacy skips pages re-dirtied during the round and sends them later', async () => {
    const [a] = pair.hosts.hosts;
    const hot = await a.driver.createDomain({
      name: 'hot',
      maxPages: GUEST_PAGES,
      workload: { kind: 'memtest', seed: 5, freeFraction: 0.5, writeRate: 2000, hotSetFraction: 0.05, pattern: 'random' },
    });
    const r = await receiver('legacy');
    const plan = await trackRound0(r.fence, 'xen-legacy', hot);
    // Pages the guest writes now stay set in the PEEKed bitmap until the next CLEAN.
    await waitFor('the guest to dirty pages', async () => bitmapCount((await a.driver.logDirtyPeek(hot)).bitmap) > 0);
    const round0 = await pair.source.sendRound({ fence: r.fence, round: 0, domid: hot, peerEndpoint: r.endpoint, token: r.token, bandwidthBps: 0, compression: NO_COMPRESSION });
    assert.ok(round0.skippedPages > 0, 'some pages were skipped');
    assert.equal(round0.pagesSent + round0.skippedPages + round0.absentPages, plan.pagesToSend);

    await a.driver.suspend(hot);
    await pair.tracker.prepareRound(r.fence, 1, true);
    const final = await pair.source.sendRound({ fence: r.fence, round: 1, domid: hot, peerEndpoint: r.endpoint, token: r.token, bandwidthBps: 0, compression: NO_COMPRESSION });
    assert.equal(final.skippedPages, 0, 'nothing is skipped in the final round');
    const [source, target] = await Promise.all([pair.source.memoryDigest(hot), pair.target.memoryDigest(r.targetDomid)]);
    assert.equal(target.digest.toString('hex'), source.digest.toString('hex'), 'the skipped pages arrived in a later round');
    await pair.tracker.stopTracking(r.fence);
    await a.driver.destroy(hot);
  });
});
