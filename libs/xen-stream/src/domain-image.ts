// A whole stream read back into the domain it describes: the config, the memory a receiver would
// hold, the vCPU state records, and counts of what the stream contained. Used by tests and by
// `ferry export --inspect`.

import { decodeDomainConfig, type DomainConfig } from './domain-config';
import { MalformedStream } from './errors';
import { LibxcDomainType, LibxcRecordType, type StreamLayers } from './format';
import { checkHvmSaveImage, type HvmImageCheck } from './hvm-context';
import type { LibxcDomainHeader } from './libxc-headers';
import { MemoryImage } from './memory-image';
import { readXenStream, type ReadOptions } from './stream-reader';
import { decodeHvmParams, decodeTscInfo, type HvmParam, type TscInfo } from './x86-records';
import type { XlHeader } from './xl-header';

export interface DomainImage {
  format: StreamLayers;
  /** Length of the stream in bytes. */
  streamBytes: number;
  xlHeader?: XlHeader;
  /** Parsed from the xl header's JSON config, when there is one. */
  config?: DomainConfig;
  libxcVersion: number;
  domainHeader: LibxcDomainHeader;
  /** libxl records in order (LIBXC_CONTEXT, EMULATOR_*, END). */
  libxlRecords: string[];
  /** How many libxc records of each type. */
  recordCounts: Record<string, number>;
  /** libxc records other than PAGE_DATA, in order (PAGE_DATA runs are folded into one "PAGE_DATA xN"). */
  recordOrder: string[];
  memory: MemoryImage;
  pfnEntries: number;
  tsc?: TscInfo;
  hvmParams?: HvmParam[];
  hvmContext?: Buffer;
  hvmContextCheck?: HvmImageCheck;
  /** X86_CPUID_POLICY / X86_MSR_POLICY bodies, when the stream has them. */
  cpuidPolicy?: Buffer;
  msrPolicy?: Buffer;
}

export async function readDomainImage(source: AsyncIterable<Uint8Array> | Uint8Array, opts: ReadOptions = {}): Promise<DomainImage> {
  const memory = new MemoryImage();
  const recordCounts: Record<string, number> = {};
  const recordOrder: string[] = [];
  const libxlRecords: string[] = [];
  let format: StreamLayers = 'libxc';
  let xlHeader: XlHeader | undefined;
  let libxcVersion = 0;
  let domainHeader: LibxcDomainHeader | undefined;
  let pfnEntries = 0;
  let streamBytes = 0;
  let tsc: TscInfo | undefined;
  let hvmParams: HvmParam[] | undefined;
  let hvmContext: Buffer | undefined;
  let cpuidPolicy: Buffer | undefined;
  let msrPolicy: Buffer | undefined;
  let first = true;
  for await (const item of readXenStream(source, opts)) {
    if (first) {
      format = item.kind === 'xl-header' ? 'xl' : item.kind === 'libxl-header' ? 'libxl' : 'libxc';
      first = false;
    }
    streamBytes = item.end;
    switch (item.kind) {
      case 'xl-header':
        xlHeader = item.header;
        break;
      case 'libxl-header':
        break;
      case 'libxl-record':
        libxlRecords.push(item.name);
        break;
      case 'libxc-image-header':
        libxcVersion = item.header.version;
        break;
      case 'libxc-domain-header':
        domainHeader = item.header;
        break;
      case 'libxc-record': {
        recordCounts[item.name] = (recordCounts[item.name] ?? 0) + 1;
        const last = recordOrder[recordOrder.length - 1];
        if (item.type === LibxcRecordType.PAGE_DATA && last?.startsWith('PAGE_DATA')) recordOrder[recordOrder.length - 1] = `PAGE_DATA x${recordCounts.PAGE_DATA}`;
        else recordOrder.push(item.type === LibxcRecordType.PAGE_DATA ? 'PAGE_DATA x1' : item.name);
        if (item.pages) {
          memory.apply(item.pages);
          pfnEntries += item.pages.length;
        } else if (item.type === LibxcRecordType.X86_TSC_INFO) tsc = decodeTscInfo(item.body, item.offset + 8);
        else if (item.type === LibxcRecordType.HVM_PARAMS) hvmParams = decodeHvmParams(item.body, item.offset + 8);
        else if (item.type === LibxcRecordType.HVM_CONTEXT) hvmContext = Buffer.from(item.body);
        else if (item.type === LibxcRecordType.X86_CPUID_POLICY) cpuidPolicy = Buffer.from(item.body);
        else if (item.type === LibxcRecordType.X86_MSR_POLICY) msrPolicy = Buffer.from(item.body);
        break;
      }
    }
  }
  if (!domainHeader) throw new MalformedStream('the stream has no libxc domain header');
  const image: DomainImage = { format, streamBytes, libxcVersion, domainHeader, libxlRecords, recordCounts, recordOrder, memory, pfnEntries };
  if (xlHeader) image.xlHeader = xlHeader;
  if (xlHeader?.config) image.config = decodeDomainConfig(xlHeader.config);
  if (tsc) image.tsc = tsc;
  if (hvmParams) image.hvmParams = hvmParams;
  if (cpuidPolicy) image.cpuidPolicy = cpuidPolicy;
  if (msrPolicy) image.msrPolicy = msrPolicy;
  if (hvmContext) {
    image.hvmContext = hvmContext;
    if (domainHeader.type === LibxcDomainType.X86_HVM) image.hvmContextCheck = checkHvmSaveImage(hvmContext);
  }
  return image;
}
