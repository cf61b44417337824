// ExportDomain on a real emulated host: a paused guest's memory and state as an xl stream whose
// pages equal the domain's memory digest, and the refusals (running, unknown, receiving,
// cancelled).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PassThrough, Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { PAGE_SIZE } from '@ferry/hypervisor';
import { FerryError } from '@ferry/runtime';
import { ChunkWritable } from '@ferry/streaming';
import { readDomainImage } from '@ferry/xen-stream';
import { newToken, startStreamerPair, type StreamerPair } from './support/pair';

const GUEST_PAGES = (16 * 1024 * 1024) / PAGE_SIZE;

function collector(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return { out: new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), bytes: () => Buffer.concat(chunks) };
}

function isRefusal(code: status, reason: string) {
  return (err: unknown) => err instanceof FerryError && err.code === code && err.reason === reason;
}

describe('ExportDomain', () => {
  let pair: StreamerPair;
  let domid: number;

  before(async () => {
    pair = await startStreamerPair();
    domid = await pair.hosts.hosts[0].driver.createDomain({ name: 'export-me', maxPages: GUEST_PAGES, workload: { kind: 'kv', seed: 3, freeFraction: 0.5 } });
  });

  after(async () => {
    await pair?.stop();
  });

  it('refuses a running domain and an unknown one', async () => {
    await assert.rejects(pair.source.exportDomain(domid, 'xl', new PassThrough()), isRefusal(status.FAILED_PRECONDITION, 'DOMAIN_RUNNING'));
    await assert.rejects(pair.source.exportDomain(4242, 'xl', new PassThrough()), isRefusal(status.NOT_FOUND, 'DOMAIN_NOT_FOUND'));
  });

  it('writes a paused domain whose pages equal its memory digest, with the vCPU state in the config', async () => {
    const driver = pair.hosts.hosts[0].driver;
    await driver.pause(domid);
    try {
      const { out, bytes } = collector();
      const r = await pair.source.exportDomain(domid, 'xl', out);
      const digest = await pair.source.memoryDigest(domid);
      assert.equal(r.memoryDigest.toString('hex'), digest.digest.toString('hex'));
      assert.equal(r.pages, digest.pageCount);
      assert.equal(r.pages + r.unpopulatedPages, GUEST_PAGES);
      const image = await readDomainImage(bytes());
      assert.equal(image.streamBytes, r.streamBytes);
      assert.equal(image.memory.digest().toString('hex'), digest.digest.toString('hex'));
      assert.deepEqual(image.config?.ferry?.vcpuContext, await driver.getVcpuContext(domid));
      assert.equal(image.config?.name, 'export-me');
      assert.equal(image.hvmContextCheck?.ok, true, 'HVM_CONTEXT is a well-formed (minimal) HVM save image');
    } finally {
      await driver.unpause(domid);
    }
  });

  it('stops when cancelled, and refuses a domain a migration is receiving into', async () => {
    const driver = pair.hosts.hosts[0].driver;
    await driver.pause(domid);
    try {
      const cancelled = new AbortController();
      cancelled.abort();
      await assert.rejects(pair.source.exportDomain(domid, 'libxc', new PassThrough(), cancelled.signal), isRefusal(status.ABORTED, 'EXPORT_CANCELLED'));
    } finally {
      await driver.unpause(domid);
    }
    const target = pair.hosts.hosts[1].driver;
    const receiving = await target.createRestoreDomain({ name: 'incoming', maxPages: GUEST_PAGES, vcpus: 1 });
    await pair.target.openReceiveSession({ migrationId: 'mig-export', epoch: 1n }, receiving, newToken());
    await assert.rejects(pair.target.exportDomain(receiving, 'xl', new PassThrough()), isRefusal(status.FAILED_PRECONDITION, 'DOMAIN_RECEIVING'));
    pair.target.closeSession({ migrationId: 'mig-export', epoch: 1n });
    await target.destroy(receiving);
  });
});

describe('ChunkWritable', () => {
  it('regroups writes into chunks of the given size, in order, the last one shorter', async () => {
    const delivered: Buffer[] = [];
    const w = new ChunkWritable(10, async (chunk) => {
      await new Promise((r) => setTimeout(r, 1));
      delivered.push(Buffer.from(chunk));
    });
    const input = Buffer.from(Array.from({ length: 47 }, (_, i) => i));
    for (const piece of [input.subarray(0, 3), input.subarray(3, 25), input.subarray(25, 26), input.subarray(26)]) {
      if (!w.write(piece)) await new Promise((r) => w.once('drain', r));
    }
    await new Promise<void>((resolve) => w.end(resolve));
    assert.deepEqual(delivered.map((c) => c.length), [10, 10, 10, 10, 7]);
    assert.deepEqual(Buffer.concat(delivered), input);
  });
});
