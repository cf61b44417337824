// Reading a Xen migration stream back into its headers and records, incrementally (a stream of
// any size is read record by record), with the checks of Xen's verifier: magic numbers and
// versions, reserved fields, zero padding, known record types, PAGE_DATA sizes, and the END
// records. Little-endian (x86) streams only.

import { ByteReader } from './byte-reader';
import { MalformedStream } from './errors';
import {
  CPUID_LEAF_BYTES,
  LIBXC_DOMAIN_HEADER_BYTES,
  LIBXC_IMAGE_HEADER_BYTES,
  LIBXC_OPTIONAL_RECORD_BIT,
  LIBXC_RECORD_NAMES,
  LIBXL_HEADER_BYTES,
  LIBXL_RECORD_NAMES,
  LibxcRecordType,
  LibxlRecordType,
  MSR_ENTRY_BYTES,
  RECORD_HEADER_BYTES,
  XL_HEADER_BYTES,
  type StreamLayers,
} from './format';
import { decodeLibxcDomainHeader, decodeLibxcImageHeader, isLibxcMarker, type LibxcDomainHeader, type LibxcImageHeader } from './libxc-headers';
import { decodeLibxlHeader, isLibxlIdent, type LibxlHeader } from './libxl-header';
import { decodePageData, type DecodedPage } from './page-data';
import { decodeRecordHeader, paddedLength } from './record';
import { decodeXlFixedHeader, decodeXlOptionalData, isXlMagic, type XlHeader } from './xl-header';

/** One piece of a stream: it starts at byte `offset` of the stream and ends before byte `end`. */
export type StreamItem = { offset: number; end: number } & (
  | { kind: 'xl-header'; header: XlHeader }
  | { kind: 'libxl-header'; header: LibxlHeader }
  | { kind: 'libxl-record'; type: number; name: string; body: Buffer }
  | { kind: 'libxc-image-header'; header: LibxcImageHeader }
  | { kind: 'libxc-domain-header'; header: LibxcDomainHeader }
  | {
      kind: 'libxc-record';
      type: number;
      name: string;
      body: Buffer;
      /** PAGE_DATA only: its entries, checked. */
      pages?: DecodedPage[];
    }
);

export interface ReadOptions {
  /** The outermost layer; 'auto' (the default) recognises it from the first bytes. */
  format?: StreamLayers | 'auto';
  /** Bytes after the last END are an error (a file) unless 'ignore' (a capture followed by other traffic). */
  trailing?: 'error' | 'ignore';
  /** Largest record body accepted, in bytes; default 64 MiB (a full PAGE_DATA is 4 MiB + 8 KiB). */
  maxRecordBytes?: number;
}

const DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** The stream's items in order; throws MalformedStream (or TruncatedStream) at the first problem. */
export async function* readXenStream(source: AsyncIterable<Uint8Array> | Uint8Array, opts: ReadOptions = {}): AsyncGenerator<StreamItem> {
  const input = new ByteReader(source);
  const maxRecordBytes = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  try {
    const format = opts.format === undefined || opts.format === 'auto' ? await detectFormat(input) : opts.format;
    if (format === 'xl') {
      const offset = input.offset;
      const fixed = decodeXlFixedHeader(await input.read(XL_HEADER_BYTES, 'the xl header'));
      const optional = await input.read(fixed.optionalDataLength, 'the xl optional data');
      yield { kind: 'xl-header', offset, end: input.offset, header: decodeXlOptionalData(fixed, optional) };
    }
    if (format === 'libxc') yield* readLibxc(input, maxRecordBytes);
    else yield* readLibxl(input, maxRecordBytes);
    if (opts.trailing !== 'ignore' && !(await input.atEnd())) throw new MalformedStream('bytes follow the final END record', input.offset);
  } finally {
    await input.close();
  }
}

async function detectFormat(input: ByteReader): Promise<StreamLayers> {
  const head = await input.peek(8, 'the first header');
  if (head[0] === 0x58 /* 'X' */) {
    const magic = await input.peek(32, 'the xl header');
    if (isXlMagic(magic)) return 'xl';
  }
  if (isLibxlIdent(head)) return 'libxl';
  if (isLibxcMarker(head)) return 'libxc';
  throw new MalformedStream('not a Xen migration stream: no xl header, "LibxlFmt" ident or libxc image marker', 0);
}

async function* readLibxl(input: ByteReader, maxRecordBytes: number): AsyncGenerator<StreamItem> {
  let offset = input.offset;
  const header = decodeLibxlHeader(await input.read(LIBXL_HEADER_BYTES, 'the libxl header'), offset);
  yield { kind: 'libxl-header', offset, end: input.offset, header };
  for (;;) {
    offset = input.offset;
    const { type, body } = await readRecord(input, 'libxl', maxRecordBytes);
    const name = LIBXL_RECORD_NAMES[type];
    if (name === undefined) throw new MalformedStream(`unknown libxl record type 0x${type.toString(16)}`, offset);
    if ((type === LibxlRecordType.END || type === LibxlRecordType.LIBXC_CONTEXT || type === LibxlRecordType.CHECKPOINT_END) && body.length !== 0) {
      throw new MalformedStream(`libxl ${name} record with a body of ${body.length} bytes`, offset);
    }
    if ((type === LibxlRecordType.EMULATOR_CONTEXT || type === LibxlRecordType.EMULATOR_XENSTORE_DATA) && body.length < 8) {
      throw new MalformedStream(`libxl ${name} record too short for its emulator header`, offset);
    }
    yield { kind: 'libxl-record', offset, end: input.offset, type, name, body };
    if (type === LibxlRecordType.LIBXC_CONTEXT) yield* readLibxc(input, maxRecordBytes);
    if (type === LibxlRecordType.END) return;
  }
}

/** Records that must have an empty body. */
const EMPTY_LIBXC_RECORDS = new Set<number>([LibxcRecordType.END, LibxcRecordType.VERIFY, LibxcRecordType.CHECKPOINT, LibxcRecordType.STATIC_DATA_END]);

async function* readLibxc(input: ByteReader, maxRecordBytes: number): AsyncGenerator<StreamItem> {
  let offset = input.offset;
  const image = decodeLibxcImageHeader(await input.read(LIBXC_IMAGE_HEADER_BYTES, 'the libxc image header'), offset);
  yield { kind: 'libxc-image-header', offset, end: input.offset, header: image };
  offset = input.offset;
  const domain = decodeLibxcDomainHeader(await input.read(LIBXC_DOMAIN_HEADER_BYTES, 'the libxc domain header'), offset);
  yield { kind: 'libxc-domain-header', offset, end: input.offset, header: domain };
  for (;;) {
    offset = input.offset;
    const { type, body } = await readRecord(input, 'libxc', maxRecordBytes);
    const optional = (type & LIBXC_OPTIONAL_RECORD_BIT) !== 0;
    const name = LIBXC_RECORD_NAMES[type] ?? (optional ? `OPTIONAL_0x${type.toString(16)}` : undefined);
    if (name === undefined) throw new MalformedStream(`unknown mandatory libxc record type 0x${type.toString(16)}`, offset);
    if (EMPTY_LIBXC_RECORDS.has(type) && body.length !== 0) throw new MalformedStream(`libxc ${name} record with a body of ${body.length} bytes`, offset);
    if (type === LibxcRecordType.STATIC_DATA_END && image.version < 3) throw new MalformedStream('STATIC_DATA_END in a version 2 stream', offset);
    if (type === LibxcRecordType.HVM_CONTEXT && body.length === 0) throw new MalformedStream('empty HVM_CONTEXT record', offset);
    if (type === LibxcRecordType.X86_CPUID_POLICY || type === LibxcRecordType.X86_MSR_POLICY) {
      const entry = type === LibxcRecordType.X86_CPUID_POLICY ? CPUID_LEAF_BYTES : MSR_ENTRY_BYTES;
      if (image.version < 3) throw new MalformedStream(`${name} in a version 2 stream`, offset);
      if (body.length < entry || body.length % entry !== 0) throw new MalformedStream(`${name} of ${body.length} bytes is not whole ${entry}-byte entries`, offset);
    }
    if (type === LibxcRecordType.PAGE_DATA) {
      yield { kind: 'libxc-record', offset, end: input.offset, type, name, body, pages: decodePageData(body, offset + RECORD_HEADER_BYTES) };
    } else {
      yield { kind: 'libxc-record', offset, end: input.offset, type, name, body };
    }
    if (type === LibxcRecordType.END) return;
  }
}

async function readRecord(input: ByteReader, layer: string, maxRecordBytes: number): Promise<{ type: number; body: Buffer }> {
  const offset = input.offset;
  const { type, length } = decodeRecordHeader(await input.read(RECORD_HEADER_BYTES, `a ${layer} record header`));
  if (length > maxRecordBytes) throw new MalformedStream(`${layer} record of ${length} bytes exceeds the ${maxRecordBytes}-byte limit`, offset);
  const padded = await input.read(paddedLength(length), `a ${layer} record body`);
  for (let i = length; i < padded.length; i++) {
    if (padded[i] !== 0) throw new MalformedStream(`non-zero padding after a ${layer} record`, offset + RECORD_HEADER_BYTES + i);
  }
  return { type, body: padded.subarray(0, length) };
}
