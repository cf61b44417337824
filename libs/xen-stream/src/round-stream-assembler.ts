// RoundStreamAssembler: turns pre-copy rounds into one valid Xen migration stream for an x86
// HVM/PVH domain, in the order libxc's saver writes it:
//
//   [xl header + JSON config]                           layers 'xl'
//   [libxl header, LIBXC_CONTEXT record]                layers 'xl' and 'libxl'
//   libxc image header, domain header (x86 HVM), [X86_CPUID_POLICY, X86_MSR_POLICY],
//   STATIC_DATA_END,
//   PAGE_DATA ... (round after round; a pfn may come again, the last copy wins),
//   X86_TSC_INFO, HVM_PARAMS (when there are params), HVM_CONTEXT, END
//   [libxl END]                                         layers 'xl' and 'libxl'
//
// Pages are given as (pfn, 4 KiB | null): null means not populated (ballooned out) and becomes
// an XTAB entry of 8 bytes with no data. PAGE_DATA records hold at most 1024 pfns, each pfn at
// most once (a pfn repeated within a round starts a new record, so a receiver applies the copies
// in order). CPU policy records are written when the caller has them (a real Xen domain); a
// receiver that misses them applies its default policy, as for streams from Xen before 4.14.
//
// Usage: begin(), then addPages() / endRound() per round, then finish(). Nothing is written
// after finish(); ending the Writable is the caller's business.

import type { Writable } from 'node:stream';
import { encodeDomainConfig, type DomainConfig } from './domain-config';
import { StreamWriteError } from './errors';
import {
  CPUID_LEAF_BYTES,
  LibxcDomainType,
  LibxcRecordType,
  LibxlRecordType,
  MAX_PAGE_DATA_PFNS,
  MSR_ENTRY_BYTES,
  PAGE_SIZE,
  PageType,
  type StreamLayers,
} from './format';
import { encodeLibxcDomainHeader, encodeLibxcImageHeader } from './libxc-headers';
import { encodeLibxlHeader } from './libxl-header';
import { encodePageDataRecord, type StreamPage } from './page-data';
import { encodeRecord } from './record';
import { StreamSink } from './stream-sink';
import { DEFAULT_TSC_INFO, encodeHvmParams, encodeTscInfo, type HvmParam, type TscInfo } from './x86-records';
import { encodeXlHeader } from './xl-header';

export interface AssemblerOptions {
  layers: StreamLayers;
  /** The domain's config for the xl header (a DomainConfig, or libxl JSON text). Required with 'xl'. */
  config?: DomainConfig | string;
  /** The Xen version the stream claims to come from (the domain header's xen_major/minor). */
  xenVersion: { major: number; minor: number };
  /** The domain's CPU policy as Xen saves it (xen_cpuid_leaf_t[], xen_msr_entry_t[]); empty or absent = not written. */
  cpuPolicy?: { cpuid?: Uint8Array; msr?: Uint8Array };
}

/** The domain's state after the last round: what follows the pages. */
export interface FinalState {
  /** Xen's HVM save image (non-empty); minimalHvmContext() when the domain has no x86 state. */
  hvmContext: Uint8Array;
  hvmParams?: readonly HvmParam[];
  tsc?: TscInfo;
}

export interface AssemblerStats {
  /** Rounds closed with endRound(). */
  rounds: number;
  pageDataRecords: number;
  /** Entries with a page of data (a pfn sent in two rounds counts twice). */
  dataPages: number;
  /** XTAB entries. */
  unpopulatedEntries: number;
  /** Every byte written, headers included. */
  bytes: number;
}

/** A page of zeroes, for callers that carry zero pages without data (never write into it). */
export const ZERO_PAGE: Uint8Array = new Uint8Array(PAGE_SIZE);

type Phase = 'new' | 'pages' | 'finished';

export class RoundStreamAssembler {
  private readonly sink: StreamSink;
  private phase: Phase = 'new';
  // The PAGE_DATA record being filled: pfns, and the data of the pages that have some, copied
  // (callers may reuse or unmap their buffers as soon as addPages returns).
  private readonly pending: StreamPage[] = [];
  private readonly pendingPfns = new Set<number>();
  private readonly staging = Buffer.allocUnsafe(MAX_PAGE_DATA_PFNS * PAGE_SIZE);
  private stagedPages = 0;
  private readonly counts = { rounds: 0, pageDataRecords: 0, dataPages: 0, unpopulatedEntries: 0 };

  constructor(
    out: Writable | StreamSink,
    private readonly opts: AssemblerOptions,
  ) {
    this.sink = out instanceof StreamSink ? out : new StreamSink(out);
    if (opts.layers === 'xl' && opts.config === undefined) throw new StreamWriteError('an xl stream needs the domain config');
    const { cpuid, msr } = opts.cpuPolicy ?? {};
    if (cpuid && cpuid.byteLength % CPUID_LEAF_BYTES !== 0) throw new StreamWriteError(`a CPUID policy is whole ${CPUID_LEAF_BYTES}-byte leaves, got ${cpuid.byteLength} bytes`);
    if (msr && msr.byteLength % MSR_ENTRY_BYTES !== 0) throw new StreamWriteError(`an MSR policy is whole ${MSR_ENTRY_BYTES}-byte entries, got ${msr.byteLength} bytes`);
  }

  get stats(): AssemblerStats {
    return { ...this.counts, bytes: this.sink.bytesWritten };
  }

  /** Writes everything up to the first page. */
  async begin(): Promise<void> {
    if (this.phase !== 'new') throw new StreamWriteError('begin() was called already');
    this.phase = 'pages';
    const { layers, config } = this.opts;
    const parts: Buffer[] = [];
    if (layers === 'xl') parts.push(encodeXlHeader(typeof config === 'string' ? config : encodeDomainConfig(config!)));
    if (layers !== 'libxc') parts.push(encodeLibxlHeader(), encodeRecord(LibxlRecordType.LIBXC_CONTEXT));
    parts.push(
      encodeLibxcImageHeader(),
      encodeLibxcDomainHeader({ type: LibxcDomainType.X86_HVM, xenMajor: this.opts.xenVersion.major, xenMinor: this.opts.xenVersion.minor }),
    );
    const { cpuid, msr } = this.opts.cpuPolicy ?? {};
    if (cpuid?.byteLength) parts.push(encodeRecord(LibxcRecordType.X86_CPUID_POLICY, cpuid));
    if (msr?.byteLength) parts.push(encodeRecord(LibxcRecordType.X86_MSR_POLICY, msr));
    parts.push(encodeRecord(LibxcRecordType.STATIC_DATA_END));
    await this.sink.write(Buffer.concat(parts));
  }

  /** Adds pages of the current round; `data` null = not populated (XTAB). */
  async addPages(pages: Iterable<StreamPage>): Promise<void> {
    this.requirePages('addPages');
    for (const page of pages) {
      if (this.pendingPfns.has(page.pfn) || this.pending.length === MAX_PAGE_DATA_PFNS) await this.flush();
      let data: Uint8Array | null = null;
      if (page.data) {
        if (page.data.byteLength !== PAGE_SIZE) throw new StreamWriteError(`pfn ${page.pfn}: a page is ${PAGE_SIZE} bytes, got ${page.data.byteLength}`);
        data = this.staging.subarray(this.stagedPages * PAGE_SIZE, (this.stagedPages + 1) * PAGE_SIZE);
        data.set(page.data);
        this.stagedPages++;
      }
      this.pending.push({ pfn: page.pfn, ...(page.type === undefined ? {} : { type: page.type }), data });
      this.pendingPfns.add(page.pfn);
    }
  }

  /** Closes the current round: its last partial record goes out. */
  async endRound(): Promise<void> {
    this.requirePages('endRound');
    await this.flush();
    this.counts.rounds++;
  }

  /** Writes the pages still pending, the domain's final state and the END records. */
  async finish(state: FinalState): Promise<AssemblerStats> {
    this.requirePages('finish');
    if (state.hvmContext.byteLength === 0) throw new StreamWriteError('HVM_CONTEXT must not be empty (use minimalHvmContext())');
    await this.flush();
    this.phase = 'finished';
    const parts = [encodeRecord(LibxcRecordType.X86_TSC_INFO, encodeTscInfo(state.tsc ?? DEFAULT_TSC_INFO))];
    // An empty HVM_PARAMS is tolerated by a restore but flagged by the verifier: leave it out.
    if (state.hvmParams?.length) parts.push(encodeRecord(LibxcRecordType.HVM_PARAMS, encodeHvmParams(state.hvmParams)));
    parts.push(encodeRecord(LibxcRecordType.HVM_CONTEXT, state.hvmContext), encodeRecord(LibxcRecordType.END));
    if (this.opts.layers !== 'libxc') parts.push(encodeRecord(LibxlRecordType.END));
    await this.sink.write(Buffer.concat(parts));
    return this.stats;
  }

  private requirePages(method: string): void {
    if (this.phase === 'new') throw new StreamWriteError(`${method}() before begin()`);
    if (this.phase === 'finished') throw new StreamWriteError(`${method}() after finish()`);
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const record = encodePageDataRecord(this.pending);
    this.counts.pageDataRecords++;
    this.counts.dataPages += this.stagedPages;
    this.counts.unpopulatedEntries += this.pending.filter((p) => (p.type ?? (p.data ? PageType.NOTAB : PageType.XTAB)) === PageType.XTAB).length;
    this.pending.length = 0;
    this.pendingPfns.clear();
    this.stagedPages = 0;
    await this.sink.write(record);
  }
}
