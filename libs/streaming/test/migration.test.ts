// A running guest's memory copied round by round from host A to host B by the tracker and the
// streamers (Xen's pre-copy loop from @ferry/policy driving them), then suspend, the final round,
// the vCPU state; source and target digests equal, and the guest really continues on B.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bitmapPfns, PAGE_SIZE, xsPaths } from '@ferry/hypervisor';
import { LoadGenerator } from '@ferry/guest';
import { runPrecopy, xen417Policy, layeredPolicy, type PrecopyExecutor, type RoundPlan } from '@ferry/policy';
import { PayloadCompression } from '@ferry/proto';
import type { SendRoundStats } from '@ferry/streaming';
import { waitFor } from '@ferry/testing';
import { newToken, startStreamerPair, type StreamerPair } from './support/pair';

const GUEST_PAGES = (32 * 1024 * 1024) / PAGE_SIZE;

describe('a live migration through the tracker and the page streamers', () => {
  let pair: StreamerPair;

  before(async () => {
    pair = await startStreamerPair();
  });

  after(async () => {
    await pair?.stop();
  });

  for (const policy of ['xen-4.17', 'layered'] as const) {
    it(`moves a kv guest under load with ${policy}; digests match and no acknowledged write is lost`, async () => {
      const [a, b] = pair.hosts.hosts;
      const name = `kv-${policy}`;
      const domid = await a.driver.createDomain({
        name,
        maxPages: GUEST_PAGES,
        workload: { kind: 'kv', seed: 11, freeFraction: 0.5 },
      });
      let serving: 'source' | 'target' = 'source';
      let targetDomid = 0;
      const load = new LoadGenerator({
        writeRate: 150,
        resolveAddress: () => (serving === 'source' ? a.driver.xenstoreRead(xsPaths.serviceAddress(domid)) : b.driver.xenstoreRead(xsPaths.serviceAddress(targetDomid))),
      });
      load.start();
      try {
        await waitFor('50 acknowledged writes', () => load.stats().acked_writes >= 50);
        const info = await a.driver.domainInfo(domid);
        targetDomid = await b.driver.createRestoreDomain({ name, maxPages: info.maxPages, vcpus: info.vcpus });
        const fence = { migrationId: `mig-${policy}`, epoch: 1n };
        const token = newToken();
        const opened = await pair.target.openReceiveSession(fence, targetDomid, token);
        assert.equal(opened.resumed, false);
        await pair.tracker.startTracking(fence, domid, { policy });

        const sent: SendRoundStats[] = [];
        // layered sends the state with the final round; xen-4.17 with a SendState of its own.
        const stateWithFinalRound = policy === 'layered';
        let finalRoundNumber = -1;
        const executor: PrecopyExecutor = {
          prepareRound: async (round, final): Promise<RoundPlan> => {
            if (final) finalRoundNumber = round;
            const c = await pair.tracker.prepareRound(fence, round, final);
            return { dirtyCount: c.dirtyCount, faultCount: c.faultCount, pagesToSend: c.pagesToSend, held: c.pagesDeferred, released: c.pagesReleased };
          },
          sendRound: async (round) => {
            const s = await pair.source.sendRound({
              fence,
              round,
              domid,
              peerEndpoint: opened.dataEndpoint,
              token,
              bandwidthBps: 0,
              compression: PayloadCompression.PAYLOAD_COMPRESSION_UNSPECIFIED,
              includeState: stateWithFinalRound && round === finalRoundNumber,
            });
            sent.push(s);
            return { pagesSent: s.pagesSent, pagesSkipped: s.skippedPages, zeroPages: s.zeroPages, bytes: s.wireBytes, elapsedMs: s.elapsedMs };
          },
          suspend: () => a.driver.suspend(domid),
        };
        const outcome = await runPrecopy(executor, policy === 'layered' ? layeredPolicy() : xen417Policy(), {
          domainPages: info.nrPages,
          p2mSize: info.maxPages,
        });
        serving = 'target';
        if (stateWithFinalRound) assert.ok(sent[sent.length - 1].stateBytes > 0, 'the final round carried the state');
        else await pair.source.sendState({ fence, domid, peerEndpoint: opened.dataEndpoint, token });

        // Round 0 carried every populated page; zero pages travelled as header entries only.
        const round0 = sent[0];
        assert.equal(round0.pagesSent, info.nrPages);
        assert.ok(round0.zeroPages > 0, 'the free half of the guest is zero pages');
        assert.equal(round0.dataBytes, (round0.pagesSent - round0.zeroPages) * PAGE_SIZE);
        assert.ok(round0.wireBytes < round0.dataBytes + round0.pagesSent * 16 + 64 * 1024, 'zero pages cost no payload');

        const finalRound = outcome.rounds[outcome.rounds.length - 1];
        assert.equal(finalRound.final, true);
        const status = pair.target.getReceiveStatus(fence.migrationId);
        assert.equal(status.lastRoundComplete, finalRound.round);
        assert.equal(status.stateReceived, true);
        assert.equal(status.rejectedBatches, 0);
        assert.equal(status.connections, 1, 'every round and the state went over one data connection');
        assert.equal(status.pagesReceived, sent.reduce((n, s) => n + s.pagesSent + s.absentPages, 0));

        const [source, target] = await Promise.all([pair.source.memoryDigest(domid), pair.target.memoryDigest(targetDomid)]);
        assert.equal(target.pageCount, source.pageCount);
        assert.equal(target.digest.toString('hex'), source.digest.toString('hex'));
        assert.deepEqual(bitmapPfns(await b.driver.p2m(targetDomid)), bitmapPfns(await a.driver.p2m(domid)));

        assert.equal(await pair.tracker.stopTracking(fence), true);
        assert.equal(pair.target.closeSession(fence).closed, true);
        assert.equal(pair.source.closeSession(fence).closed, true);

        // The commit point: the guest continues on B from the bytes that were sent.
        await a.driver.destroy(domid);
        await b.driver.unpause(targetDomid);
        const before = load.stats().acked_writes;
        await waitFor('writes acknowledged by the migrated guest', () => load.stats().acked_writes >= before + 50);
      } finally {
        await load.stop();
      }
      const verified = await load.verify();
      assert.equal(verified.lost_writes, 0, 'every acknowledged write survived the migration');
      assert.equal(verified.wrong_reads, 0);
      await b.driver.destroy(targetDomid);
    });
  }
});
