// Streams assembled from several pre-copy rounds, checked by Xen's own verifier (verify-stream-v2
// from xen-utils-4.17) in each of the three layer choices; and a corrupted stream, which the
// verifier must refuse (so a pass means something).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { streamStateOf } from '@ferry/streaming';
import {
  encodeHvmParams,
  encodeRecord,
  encodeTscInfo,
  LibxcRecordType,
  minimalHvmContext,
  readDomainImage,
  RoundStreamAssembler,
  ZERO_PAGE,
  type StreamLayers,
} from '@ferry/xen-stream';
import { requireVerifier, verifyStream } from './xen-verifier';

const PAGES = 3000; // a 12 MiB guest: three PAGE_DATA records in round 0

/** Round 0 sends every pfn (a third ballooned out: XTAB), then three dirty rounds resend some pages. */
async function writeRounds(file: string, layers: StreamLayers): Promise<void> {
  const out = createWriteStream(file);
  const a = new RoundStreamAssembler(out, {
    layers,
    config: { name: 'rounds', uuid: '5e1f0000-0000-4000-8000-000000000001', vcpus: 2, maxMemKiB: PAGES * 4, targetMemKiB: (PAGES * 4 * 2) / 3 },
    xenVersion: { major: 4, minor: 17 },
  });
  await a.begin();
  const page = (pfn: number, round: number) => {
    const p = Buffer.alloc(4096);
    p.writeUInt32LE(pfn, 0);
    p.writeUInt32LE(round, 4);
    return p;
  };
  await a.addPages(Array.from({ length: PAGES }, (_, pfn) => ({ pfn, data: pfn % 3 === 2 ? null : pfn % 7 === 0 ? ZERO_PAGE : page(pfn, 0) })));
  await a.endRound();
  for (let round = 1; round <= 3; round++) {
    const dirty = Array.from({ length: 400 }, (_, i) => (i * 7 * round) % PAGES).filter((pfn) => pfn % 3 !== 2);
    await a.addPages(dirty.map((pfn) => ({ pfn, data: page(pfn, round) })));
    await a.endRound();
  }
  await a.finish({ hvmContext: minimalHvmContext(), hvmParams: [{ index: 1n, value: 0xfeffcn }], tsc: { mode: 0, khz: 2_000_000, nsec: 1n, incarnation: 0 } });
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

describe('a stream assembled from several rounds, judged by Xen\'s verifier', { timeout: 15 * 60_000 }, () => {
  let dir: string;
  before(() => {
    requireVerifier();
    dir = mkdtempSync(join(tmpdir(), 'ferry-xen-stream-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const layers of ['xl', 'libxl', 'libxc'] as const) {
    test(`${layers}: verify-stream-v2 -f ${layers} accepts it`, async () => {
      const file = join(dir, `rounds.${layers}`);
      await writeRounds(file, layers);
      const run = await verifyStream(file, layers);
      assert.equal(run.code, 0, `verifier refused the stream:\n${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /Domain Header: x86 HVM from Xen 4\.17/);
      assert.match(run.stdout, /Squashed \d+ Page Data records together/);
      assert.match(run.stdout, /Libxc Record: End/);
      if (layers !== 'libxc') assert.match(run.stdout, /Libxl Record: End/);

      // And our reader agrees with what the rounds put in: the last round's copy of each page.
      const image = await readDomainImage(readFileSync(file));
      assert.equal(image.memory.populatedCount, PAGES - Math.floor(PAGES / 3));
      assert.equal(image.memory.unpopulatedCount, Math.floor(PAGES / 3));
      assert.equal(image.memory.page(21)!.readUInt32LE(4), 3, 'pfn 21 was dirtied in round 3 (21 = 3 x 7)');
      assert.equal(image.memory.page(1)!.readUInt32LE(4), 0, 'pfn 1 was sent in round 0 only');
    });
  }

  test('a Xen domain\'s state from the xen driver\'s context (CPU policies, TSC, HVM params, HVM context): accepted', async () => {
    const header = Buffer.alloc(16);
    header.write('FERRYXEN', 0, 'latin1');
    header.writeUInt32LE(1, 8);
    const domainFacts = Buffer.alloc(24);
    domainFacts.writeUInt32LE(2, 0); // PVH
    const records = [
      encodeRecord(0x8000_0001, domainFacts),
      encodeRecord(LibxcRecordType.X86_CPUID_POLICY, Buffer.alloc(24 * 3, 1)),
      encodeRecord(LibxcRecordType.X86_MSR_POLICY, Buffer.alloc(16 * 2, 2)),
      encodeRecord(LibxcRecordType.X86_TSC_INFO, encodeTscInfo({ mode: 0, khz: 2_400_000, nsec: 42n, incarnation: 1 })),
      encodeRecord(LibxcRecordType.HVM_CONTEXT, minimalHvmContext({ cpuid: 0x806ec, gtscKhz: 2_400_000 })),
      encodeRecord(LibxcRecordType.HVM_PARAMS, encodeHvmParams([{ index: 1n, value: 0xfeffcn }, { index: 17n, value: 0xfefffn }])),
    ];
    header.writeUInt32LE(records.length, 12);
    const state = streamStateOf(Buffer.concat([header, ...records]));
    const file = join(dir, 'xen-domain.xl');
    const out = createWriteStream(file);
    const a = new RoundStreamAssembler(out, {
      layers: 'xl',
      config: { name: 'pvh-1', uuid: '5e1f0000-0000-4000-8000-000000000002', vcpus: 1, maxMemKiB: 4096, targetMemKiB: 4096 },
      xenVersion: { major: 4, minor: 17 },
      cpuPolicy: state.cpuPolicy,
    });
    await a.begin();
    await a.addPages(Array.from({ length: 1024 }, (_, pfn) => ({ pfn, data: pfn < 1000 ? Buffer.alloc(4096, pfn & 0xff) : null })));
    await a.endRound();
    await a.finish(state.finalState);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const run = await verifyStream(file, 'xl');
    assert.equal(run.code, 0, `verifier refused the stream:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /Libxc Record: x86 CPUID policy, length 72/);
    assert.match(run.stdout, /Libxc Record: x86 MSR policy, length 32/);
    assert.match(run.stdout, /Mode 0, 2400000 kHz, 42 ns, incarnation 1/);
    assert.match(run.stdout, /Libxc Record: HVM params, length 40/);
    const image = await readDomainImage(readFileSync(file));
    assert.deepEqual(image.recordOrder, ['X86_CPUID_POLICY', 'X86_MSR_POLICY', 'STATIC_DATA_END', 'PAGE_DATA x1', 'X86_TSC_INFO', 'HVM_PARAMS', 'HVM_CONTEXT', 'END']);
  });

  test('the verifier refuses a corrupted stream (a reserved bit set in a pfn entry)', async () => {
    const file = join(dir, 'rounds.xl');
    await writeRounds(file, 'xl');
    const bytes = readFileSync(file);
    // The libxc image header (24 bytes), the domain header (16), STATIC_DATA_END (8), then PAGE_DATA.
    const firstPageData = bytes.indexOf(Buffer.from('ffffffffffffffff58454e46', 'hex')) + 24 + 16 + 8;
    assert.equal(bytes.readUInt32LE(firstPageData), 1, 'found the first PAGE_DATA record');
    bytes[firstPageData + 8 + 8 + 6] |= 0x10; // bit 52 of the first pfn entry: reserved
    const bad = join(dir, 'corrupt.xl');
    writeFileSync(bad, bytes);
    const run = await verifyStream(bad, 'xl');
    assert.equal(run.code, 1, `expected a stream error:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stderr, /Reserved bits set in pfn/);
  });
});
