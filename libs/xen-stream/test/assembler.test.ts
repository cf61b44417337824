// RoundStreamAssembler: rounds in, one stream out, read back with the reader: record order,
// repeated pfns (the last copy wins), XTAB entries, batches of at most 1024, the three layer
// choices, misuse, and backpressure from a slow consumer.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  LibxcRecordType,
  minimalHvmContext,
  readDomainImage,
  readXenStream,
  RoundStreamAssembler,
  StreamWriteError,
  type DomainConfig,
  type StreamItem,
  type StreamLayers,
} from '@ferry/xen-stream';

const page = (fill: number) => Buffer.alloc(4096, fill);
const CONFIG: DomainConfig = { name: 'vm', uuid: '00000000-0000-4000-8000-000000000000', vcpus: 1, maxMemKiB: 16384, targetMemKiB: 16384 };

/** A Writable that keeps everything written to it. */
function collector(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

async function items(bytes: Buffer): Promise<StreamItem[]> {
  const all: StreamItem[] = [];
  for await (const item of readXenStream(bytes)) all.push(item);
  return all;
}

async function assemble(layers: StreamLayers, rounds: Array<Array<[number, number | null]>>): Promise<Buffer> {
  const { out, bytes } = collector();
  const a = new RoundStreamAssembler(out, { layers, config: CONFIG, xenVersion: { major: 4, minor: 17 } });
  await a.begin();
  for (const round of rounds) {
    await a.addPages(round.map(([pfn, fill]) => ({ pfn, data: fill === null ? null : page(fill) })));
    await a.endRound();
  }
  await a.finish({ hvmContext: minimalHvmContext(), hvmParams: [{ index: 1n, value: 7n }] });
  return bytes();
}

describe('RoundStreamAssembler', () => {
  test('several rounds: repeated pfns, the last copy wins; XTAB leaves a pfn unpopulated', async () => {
    const bytes = await assemble('xl', [
      [[0, 1], [1, 1], [2, null], [3, 1]],
      [[1, 2], [3, 2]],
      [[3, 3], [4, null]],
    ]);
    const image = await readDomainImage(bytes);
    assert.equal(image.format, 'xl');
    assert.equal(image.config?.name, 'vm');
    assert.deepEqual(image.memory.populatedPfns(), [0, 1, 3]);
    assert.equal(image.memory.page(0)![0], 1);
    assert.equal(image.memory.page(1)![0], 2, 'pfn 1: round 1 wins over round 0');
    assert.equal(image.memory.page(3)![0], 3, 'pfn 3: round 2 wins');
    assert.equal(image.memory.dataEntries, 6);
    assert.equal(image.memory.unpopulatedCount, 2);
    assert.equal(image.pfnEntries, 8);
    assert.deepEqual(image.recordOrder, ['STATIC_DATA_END', 'PAGE_DATA x3', 'X86_TSC_INFO', 'HVM_PARAMS', 'HVM_CONTEXT', 'END']);
    assert.deepEqual(image.libxlRecords, ['LIBXC_CONTEXT', 'END']);
    assert.deepEqual(image.hvmParams, [{ index: 1n, value: 7n }]);
    assert.equal(image.hvmContextCheck?.ok, true);
    assert.equal(image.streamBytes, bytes.length);
  });

  test('a page given data after an XTAB listing stays populated, as on a stock receiver', async () => {
    const image = await readDomainImage(await assemble('libxc', [[[9, null]], [[9, 5]], [[9, null]]]));
    assert.deepEqual(image.memory.populatedPfns(), [9]);
    assert.equal(image.memory.page(9)![0], 5);
    assert.equal(image.memory.populatedListedAsXtab, 1);
  });

  test('records hold at most 1024 pfns and each pfn once: a repeat within a round starts a new record', async () => {
    const round = Array.from({ length: 2500 }, (_, pfn): [number, number | null] => [pfn, pfn % 3 === 0 ? null : pfn % 250]);
    round.splice(10, 0, [5, 77]); // pfn 5 again, in the same round
    const bytes = await assemble('libxl', [round]);
    const pageRecords = (await items(bytes)).filter((i) => i.kind === 'libxc-record' && i.type === LibxcRecordType.PAGE_DATA);
    const sizes = pageRecords.map((r) => (r.kind === 'libxc-record' ? r.pages!.length : 0));
    assert.deepEqual(sizes, [10, 1024, 1024, 443], 'split at the repeat, then at 1024');
    for (const r of pageRecords) {
      if (r.kind !== 'libxc-record') continue;
      const pfns = r.pages!.map((p) => p.pfn);
      assert.equal(new Set(pfns).size, pfns.length, 'no pfn twice in one record');
    }
    const image = await readDomainImage(bytes);
    assert.equal(image.memory.page(5)![0], 77, 'the later copy of pfn 5 wins');
    assert.equal(image.memory.populatedCount, 2500 - Math.ceil(2500 / 3));
  });

  test('layers: xl starts with the xl header, libxl with "LibxlFmt", libxc with the image marker', async () => {
    const expectFirst: Record<StreamLayers, string> = { xl: 'xl-header', libxl: 'libxl-header', libxc: 'libxc-image-header' };
    for (const layers of ['xl', 'libxl', 'libxc'] as const) {
      const all = await items(await assemble(layers, [[[0, 1]]]));
      assert.equal(all[0].kind, expectFirst[layers]);
      const last = all[all.length - 1];
      assert.equal(last.kind, layers === 'libxc' ? 'libxc-record' : 'libxl-record', `${layers} ends with its outermost END`);
    }
  });

  test('CPU policy records come before STATIC_DATA_END, and must be whole entries', async () => {
    const { out, bytes } = collector();
    const a = new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 }, cpuPolicy: { cpuid: Buffer.alloc(48, 1), msr: Buffer.alloc(16, 2) } });
    await a.begin();
    await a.addPages([{ pfn: 0, data: page(1) }]);
    await a.finish({ hvmContext: minimalHvmContext() });
    const image = await readDomainImage(bytes());
    assert.deepEqual(image.recordOrder.slice(0, 3), ['X86_CPUID_POLICY', 'X86_MSR_POLICY', 'STATIC_DATA_END']);
    assert.equal(image.cpuidPolicy?.length, 48);
    assert.equal(image.msrPolicy?.length, 16);
    assert.throws(() => new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 }, cpuPolicy: { cpuid: Buffer.alloc(30) } }), /24-byte leaves/);
    assert.throws(() => new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 }, cpuPolicy: { msr: Buffer.alloc(8) } }), /16-byte entries/);
  });

  test('misuse is refused: pages before begin() or after finish(), an empty HVM context, xl without a config', async () => {
    const { out } = collector();
    const a = new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 } });
    await assert.rejects(a.addPages([{ pfn: 1, data: null }]), /before begin/);
    await a.begin();
    await assert.rejects(a.begin(), /already/);
    await assert.rejects(a.addPages([{ pfn: 1, data: Buffer.alloc(10) }]), /4096 bytes/);
    await assert.rejects(a.finish({ hvmContext: new Uint8Array(0) }), /must not be empty/);
    await a.finish({ hvmContext: minimalHvmContext() });
    await assert.rejects(a.addPages([{ pfn: 1, data: null }]), /after finish/);
    assert.throws(() => new RoundStreamAssembler(out, { layers: 'xl', xenVersion: { major: 4, minor: 17 } }), StreamWriteError);
  });

  test('the caller may reuse its page buffers as soon as addPages returns', async () => {
    const { out, bytes } = collector();
    const a = new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 } });
    await a.begin();
    const buffer = page(1);
    await a.addPages([{ pfn: 0, data: buffer }]);
    buffer.fill(9); // still pending in the assembler
    await a.addPages([{ pfn: 1, data: buffer }]);
    await a.finish({ hvmContext: minimalHvmContext() });
    const image = await readDomainImage(bytes());
    assert.equal(image.memory.page(0)![0], 1);
    assert.equal(image.memory.page(1)![0], 9);
  });

  test('backpressure: with a slow consumer the assembler waits instead of buffering the domain', async () => {
    let maxBuffered = 0;
    const received: Buffer[] = [];
    const highWaterMark = 64 * 1024;
    const out = new Writable({
      highWaterMark,
      write(chunk: Buffer, _enc, cb) {
        received.push(chunk);
        setTimeout(cb, 2);
      },
    });
    const a = new RoundStreamAssembler(out, { layers: 'libxc', xenVersion: { major: 4, minor: 17 } });
    await a.begin();
    for (let round = 0; round < 3; round++) {
      await a.addPages(Array.from({ length: 2048 }, (_, pfn) => ({ pfn, data: page(round) })));
      maxBuffered = Math.max(maxBuffered, out.writableLength);
      await a.endRound();
      maxBuffered = Math.max(maxBuffered, out.writableLength);
    }
    const stats = await a.finish({ hvmContext: minimalHvmContext() });
    await new Promise<void>((resolve) => out.end(resolve));
    assert.ok(maxBuffered <= highWaterMark + (8 + 8 + 8 * 1024 + 4096 * 1024), `at most one record beyond the high-water mark was queued (saw ${maxBuffered})`);
    assert.equal(Buffer.concat(received).length, stats.bytes);
    assert.deepEqual({ rounds: stats.rounds, records: stats.pageDataRecords, pages: stats.dataPages }, { rounds: 3, records: 6, pages: 6144 });
    const image = await readDomainImage(Buffer.concat(received));
    assert.equal(image.memory.page(2047)![0], 2);
  });
});
