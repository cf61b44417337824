// The Xen target's receive path end to end, with a stand-in for `xl migrate-receive`
// (support/fake-xl.js) that speaks xl's handshake and reads the stream as xl does: the driver's
// receiver starts it and hands it the xl header; the page-streamer's feed streams rounds and the
// state through the rendezvous socket; the permission to go ends it.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { minimalHvmContext, readDomainImage } from '@ferry/xen-stream';
import { packVcpuContext, readXlReceiveMeta, XlReceiver, XlRestoreFeed } from '@ferry/xen-driver';

const FAKE_XL = join(__dirname, 'support', 'fake-xl.js');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function page(fill: number): Buffer {
  return Buffer.alloc(4096, fill);
}

const context = () =>
  packVcpuContext({
    domain: { guestType: 'pvh', vcpus: 1, p2mSize: 0x100, xenMajor: 4, xenMinor: 17 },
    tsc: { mode: 0, khz: 1_000_000, elapsedNsec: 5n, incarnation: 1 },
    hvmParams: [{ index: 1, value: 0xfeffen }],
    hvmContext: minimalHvmContext(),
    cpuidPolicy: new Uint8Array(0),
    msrPolicy: new Uint8Array(0),
  });

async function startReceiver(dir: string, env: Record<string, string> = {}) {
  Object.assign(process.env, { FAKE_XL_OUT: join(dir, 'received.bin'), FAKE_XL_FAIL: '' }, env);
  return XlReceiver.start({
    xl: FAKE_XL,
    name: 'guest',
    config: JSON.stringify({ c_info: { type: 'pvh', name: 'guest', uuid: '' }, b_info: { max_vcpus: 1, max_memkb: 1024, target_memkb: 1024 } }),
    maxPages: 0x100,
    dir,
    capturePath: join(dir, 'capture.bin'),
    findDomid: async (name) => (name === 'guest--incoming' && existsSync(join(dir, 'received.bin.created')) ? 42 : undefined),
    timeoutMs: 20_000,
  });
}

describe('XlReceiver and XlRestoreFeed', () => {
  it('rounds and state become the xl stream xl migrate-receive reads; the permission to go ends it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xl-receive-'));
    dirs.push(dir);
    const receiver = await startReceiver(dir);
    assert.equal(receiver.domid, 42);
    const meta = readXlReceiveMeta(dir, 42);
    assert.ok(meta);
    assert.equal(meta.maxPages, 0x100);

    const feed = await XlRestoreFeed.open(meta, { major: 4, minor: 17 });
    await feed.writePages([1, 2, 3], Buffer.concat([page(1), page(2), page(3)])); // round 0
    await feed.writePages([2], page(9)); // round 1: pfn 2 again, the last copy wins
    await feed.finish(context());
    await receiver.permitToGo(20_000);

    const received = readFileSync(join(dir, 'received.bin'));
    assert.deepEqual(readFileSync(join(dir, 'capture.bin')), received, 'the tee holds exactly what xl read');
    const image = await readDomainImage(received);
    assert.equal(image.format, 'xl');
    assert.equal(image.config?.name, 'guest');
    assert.deepEqual(image.memory.populatedPfns(), [1, 2, 3]);
    assert.equal(image.memory.page(2)?.[0], 9);
    assert.equal(image.memory.page(3)?.[0], 3);
    assert.equal(image.tsc?.khz, 1_000_000);
    assert.deepEqual(image.libxlRecords, ['LIBXC_CONTEXT', 'END']);
    assert.equal(readXlReceiveMeta(dir, 42), null, 'the rendezvous is gone after the permission to go');
  });

  it("a restore xl gives up on fails the state write with xl's words, and abort cleans up", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xl-receive-'));
    dirs.push(dir);
    const receiver = await startReceiver(dir, { FAKE_XL_FAIL: 'restore' });
    const feed = await XlRestoreFeed.open(readXlReceiveMeta(dir, 42)!, { major: 4, minor: 17 });
    await feed.writePages([1], page(1));
    await assert.rejects(feed.finish(context()), /xl migrate-receive (failed|exited)|closed its socket/);
    await assert.rejects(receiver.permitToGo(5_000), /xl migrate-receive exited/);
    await receiver.abort();
    assert.equal(readXlReceiveMeta(dir, 42), null);
  });

  it('an unpause that timed out before xl had the domain leaves the receiver waiting for a retry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xl-receive-'));
    dirs.push(dir);
    const receiver = await startReceiver(dir);
    const feed = await XlRestoreFeed.open(readXlReceiveMeta(dir, 42)!, { major: 4, minor: 17 });
    await feed.writePages([1], page(1));
    await assert.rejects(receiver.permitToGo(300), /no sign of xl migrate-receive to report the domain received/);
    assert.equal(receiver.isFailed, false);
    await feed.finish(context());
    await receiver.permitToGo(20_000);
    await receiver.permitToGo(20_000); // a retry after success is a no-op
  });

  it('a rollback before the commit point: abort ends xl', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xl-receive-'));
    dirs.push(dir);
    const receiver = await startReceiver(dir);
    const feed = await XlRestoreFeed.open(readXlReceiveMeta(dir, 42)!, { major: 4, minor: 17 });
    await feed.writePages([1], page(1));
    await receiver.abort();
    assert.equal(readXlReceiveMeta(dir, 42), null);
    await assert.rejects(feed.writePages([2], page(2)));
  });
});
