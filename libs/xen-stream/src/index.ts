// @ferry/xen-stream: Xen's own migration stream formats, as Xen 4.17 writes and reads them —
// the xl save header with the domain's JSON config, the libxl stream v2 ("LibxlFmt") and the
// libxc stream v3 ("XENF") of an x86 HVM/PVH domain. Pure codecs (Buffers in, Buffers out), a
// writer over a Node Writable with backpressure (RoundStreamAssembler), and a reader.
export * from './format';
export { MalformedStream, TruncatedStream, StreamWriteError } from './errors';
export { encodeRecord, decodeRecordHeader, paddedLength, type RecordHeader } from './record';
export { encodeXlHeader, decodeXlFixedHeader, decodeXlOptionalData, isXlMagic, type XlHeader, type XlFixedHeader } from './xl-header';
export { encodeLibxlHeader, decodeLibxlHeader, isLibxlIdent, type LibxlHeader } from './libxl-header';
export {
  encodeLibxcImageHeader,
  decodeLibxcImageHeader,
  encodeLibxcDomainHeader,
  decodeLibxcDomainHeader,
  isLibxcMarker,
  type LibxcImageHeader,
  type LibxcDomainHeader,
} from './libxc-headers';
export { encodePageDataRecord, decodePageData, type StreamPage, type DecodedPage } from './page-data';
export { encodeTscInfo, decodeTscInfo, encodeHvmParams, decodeHvmParams, DEFAULT_TSC_INFO, type TscInfo, type HvmParam } from './x86-records';
export { minimalHvmContext, checkHvmSaveImage, type HvmSaveEntry, type HvmImageCheck } from './hvm-context';
export { encodeDomainConfig, decodeDomainConfig, FERRY_CONFIG_KEY, type DomainConfig, type FerryDomainSection, type DriverKind } from './domain-config';
export { StreamSink } from './stream-sink';
export { RoundStreamAssembler, ZERO_PAGE, type AssemblerOptions, type AssemblerStats, type FinalState } from './round-stream-assembler';
export { ByteReader } from './byte-reader';
export { readXenStream, type StreamItem, type ReadOptions } from './stream-reader';
export { MemoryImage } from './memory-image';
export { readDomainImage, type DomainImage } from './domain-image';
