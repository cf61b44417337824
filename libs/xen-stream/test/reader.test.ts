// The reader: any chunking of the input gives the same records, and broken streams are refused
// with the offset of the problem (truncation, padding, unknown records, trailing bytes, limits).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  encodeRecord,
  LIBXC_IMAGE_HEADER_BYTES,
  LIBXC_DOMAIN_HEADER_BYTES,
  LibxcRecordType,
  MalformedStream,
  minimalHvmContext,
  readDomainImage,
  readXenStream,
  RoundStreamAssembler,
  TruncatedStream,
  type StreamLayers,
} from '@ferry/xen-stream';

async function sample(layers: StreamLayers): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const out = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) });
  const a = new RoundStreamAssembler(out, {
    layers,
    config: { name: 'r', uuid: '00000000-0000-4000-8000-000000000000', vcpus: 1, maxMemKiB: 64, targetMemKiB: 64 },
    xenVersion: { major: 4, minor: 17 },
  });
  await a.begin();
  await a.addPages([{ pfn: 0, data: Buffer.alloc(4096, 1) }, { pfn: 3, data: null }, { pfn: 2, data: Buffer.alloc(4096, 2) }]);
  await a.endRound();
  await a.finish({ hvmContext: minimalHvmContext() });
  return Buffer.concat(chunks);
}

async function readAll(source: AsyncIterable<Uint8Array> | Uint8Array, format?: StreamLayers) {
  const out: Array<{ kind: string; offset: number; end: number; name?: string }> = [];
  for await (const item of readXenStream(source, format ? { format } : {})) {
    out.push({ kind: item.kind, offset: item.offset, end: item.end, ...('name' in item ? { name: item.name } : {}) });
  }
  return out;
}

async function* inPieces(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** The sample's libxc part starts after the xl header, the libxl header and LIBXC_CONTEXT. */
function libxcStart(bytes: Buffer): number {
  return bytes.indexOf(Buffer.from('ffffffffffffffff58454e46', 'hex'));
}

describe('readXenStream', () => {
  test('whole, byte by byte or in odd pieces: the same items, with offsets that tile the stream', async () => {
    const bytes = await sample('xl');
    const whole = await readAll(bytes);
    assert.deepEqual(await readAll(inPieces(bytes, 1)), whole);
    assert.deepEqual(await readAll(inPieces(bytes, 4093)), whole);
    assert.deepEqual(whole.map((i) => i.name ?? i.kind), [
      'xl-header', 'libxl-header', 'LIBXC_CONTEXT', 'libxc-image-header', 'libxc-domain-header',
      'STATIC_DATA_END', 'PAGE_DATA', 'X86_TSC_INFO', 'HVM_CONTEXT', 'END', 'END',
    ]);
    for (let i = 1; i < whole.length; i++) assert.equal(whole[i].offset, whole[i - 1].end, 'items are contiguous');
    assert.equal(whole[0].offset, 0);
    assert.equal(whole[whole.length - 1].end, bytes.length);
  });

  test('the format is recognised from the first bytes, or taken as given', async () => {
    for (const layers of ['xl', 'libxl', 'libxc'] as const) {
      const bytes = await sample(layers);
      assert.equal((await readDomainImage(bytes)).format, layers);
      assert.equal((await readAll(bytes, layers)).length > 0, true);
    }
    await assert.rejects(readAll(Buffer.alloc(64, 0x41)), /not a Xen migration stream/);
    await assert.rejects(readAll(await sample('libxl'), 'xl'), /no xl header/);
  });

  test('a stream cut anywhere is a TruncatedStream', async () => {
    const bytes = await sample('xl');
    for (const cut of [10, 60, bytes.length - 8 - 8, bytes.length - 1]) {
      await assert.rejects(readAll(bytes.subarray(0, cut)), TruncatedStream, `cut at ${cut}`);
    }
  });

  test('non-zero padding, unknown mandatory records and bytes after the end are refused; optional records pass', async () => {
    const bytes = await sample('libxc');
    const recordsAt = LIBXC_IMAGE_HEADER_BYTES + LIBXC_DOMAIN_HEADER_BYTES;
    const head = bytes.subarray(0, recordsAt);
    const rest = bytes.subarray(recordsAt);
    const withRecord = (record: Buffer) => Buffer.concat([head, record, rest]);

    const padded = encodeRecord(LibxcRecordType.HVM_CONTEXT, Buffer.from([1]));
    padded[9] = 1;
    await assert.rejects(readAll(withRecord(padded)), /non-zero padding/);
    await assert.rejects(readAll(withRecord(encodeRecord(0x13))), /unknown mandatory libxc record type 0x13/);
    const optional = await readAll(withRecord(encodeRecord(0x8000_0001, Buffer.from('ferry'))));
    assert.ok(optional.some((i) => i.name === 'OPTIONAL_0x80000001'));
    await assert.rejects(readAll(withRecord(encodeRecord(LibxcRecordType.END, Buffer.alloc(8)))), /END record with a body/);
    await assert.rejects(readAll(Buffer.concat([bytes, Buffer.alloc(8)])), /bytes follow the final END/);
    const trailingOk: string[] = [];
    for await (const item of readXenStream(Buffer.concat([bytes, Buffer.from('domain received')]), { trailing: 'ignore' })) trailingOk.push(item.kind);
    assert.deepEqual(trailingOk.slice(-1), ['libxc-record']);
    assert.equal(trailingOk.length, 7, 'two headers and five records, the trailing text left alone');
  });

  test('a record longer than the limit is refused before it is read', async () => {
    const bytes = await sample('xl');
    const at = libxcStart(bytes) + LIBXC_IMAGE_HEADER_BYTES + LIBXC_DOMAIN_HEADER_BYTES + 8; // the PAGE_DATA header
    const huge = Buffer.from(bytes);
    huge.writeUInt32LE(0xffff_fff0, at + 4);
    const err = await readAll(huge).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof MalformedStream && /exceeds/.test(err.message), String(err));
    assert.equal(err.offset, at);
  });
});
