// web: a SPECweb-like server. Each request reads a document (Zipf popularity, checked against its
// checksum), appends an access-log entry to a ring (sequential writes: a new page every 8
// requests) and updates the client's session record (a small hot set, Zipf, with shadow versions
// so a lost update is caught). One log entry and one session are scrubbed per request.
//
// Memory: sessions take hotSetFraction of the workload's pages, the log ring 10%, documents the
// rest (the "page cache" of a web server, read-mostly).
// Defaults (shared/reference/literature.md §5c, web row: 1 GB guest, 10-30 MB/s written, hot set
// 1-2%, Zipf s≈1.0):
//  - writeRate: 0.04 requests/s per guest page. A request writes ~1 KiB (512 B log entry +
//    512 B session), so this writes 1% of guest memory per second: 10 MB/s for 1 GB, the low end
//    of §5c's range (Clark's SPECweb99 converged at 1 Gbit/s with 210 ms downtime).
//  - hotSetFraction 0.02 (sessions), zipfS 1.0.

import type { WorkloadSpec } from '@ferry/hypervisor';
import { hash3 } from '../checksum';
import type { GuestOs } from '../guest-os';
import { GuestFault } from '../phys-mem';
import { WORDS_PER_PAGE } from '../platform';
import { Popularity } from '../popularity';
import { checkRecord, writeRecord } from '../records';
import { Region } from '../region';
import { HEADER_MAGIC_WORD, orDefault, type Workload, type WorkloadProgram } from './workload';

const MAGIC = 0x31424557; // "WEB1"
const H = {
  DOCS_ROOT: 1,
  LOG_ROOT: 2,
  SESSIONS_ROOT: 3,
  SESSION_VERSIONS_ROOT: 4,
  LOG_SEQ: 6, // 64-bit: sequence number of the next log entry
  DOC_READS: 8, // 64-bit
  SESSION_WRITES: 10, // 64-bit
} as const;
const ENTRY_WORDS = 128;
const ENTRIES_PER_PAGE = WORDS_PER_PAGE / ENTRY_WORDS;
const DOC_CHECKSUM_WORD = 1;
const DOC_PAYLOAD = 2;
const R_LOG_SCRUB = 0;
const R_SESSION_SCRUB = 1;

export interface WebParams {
  rate: number;
  sessionFraction: number;
  logFraction: number;
  zipfS: number;
  phaseSeconds: number;
}

export function webParams(spec: WorkloadSpec, maxPages: number): WebParams {
  return {
    rate: orDefault(spec.writeRate, Math.max(50, Math.round(maxPages * 0.04))),
    sessionFraction: Math.min(0.5, orDefault(spec.hotSetFraction, 0.02)),
    logFraction: 0.1,
    zipfS: orDefault(spec.zipfS, 1.0),
    phaseSeconds: orDefault(spec.phaseSeconds, 0),
  };
}

class Web implements Workload {
  readonly kind = 'web' as const;
  readonly rate: number;
  private readonly docPopularity: Popularity;
  private readonly sessionPopularity: Popularity;
  private readonly logEntries: number;
  private readonly sessions: number;

  constructor(
    private readonly os: GuestOs,
    private readonly header: number,
    private readonly docs: Region,
    private readonly log: Region,
    private readonly sessionRecords: Region,
    private readonly sessionVersions: Region,
    private readonly params: WebParams,
  ) {
    this.rate = params.rate;
    this.logEntries = log.pages * ENTRIES_PER_PAGE;
    this.sessions = sessionRecords.pages * ENTRIES_PER_PAGE;
    this.docPopularity = new Popularity({ items: docs.pages, hotFraction: 1, zipfS: params.zipfS, hotShare: 1 });
    this.sessionPopularity = new Popularity({ items: this.sessions, hotFraction: 1, zipfS: params.zipfS, hotShare: 1 });
  }

  step(): void {
    const { os } = this;
    const phase = os.phase(this.params.phaseSeconds);
    const doc = this.docPopularity.pick(os.prng, phase);
    if (!this.checkDoc(doc)) os.countError(`web document ${doc} is corrupt`);
    os.mem.add64(this.header, H.DOC_READS, 1);
    this.appendLog();
    this.writeSession(this.sessionPopularity.pick(os.prng, phase));
    const { vcpu } = os;
    const l = vcpu.reg(R_LOG_SCRUB) % this.logEntries;
    vcpu.setReg(R_LOG_SCRUB, l + 1);
    if (!this.checkLogEntry(l)) os.countError(`web log entry ${l} is stale or corrupt`);
    const s = vcpu.reg(R_SESSION_SCRUB) % this.sessions;
    vcpu.setReg(R_SESSION_SCRUB, s + 1);
    if (!this.checkSession(s)) os.countError(`web session ${s} is stale or corrupt`);
  }

  stats(): Record<string, number | string> {
    const { mem } = this.os;
    return {
      documents: this.docs.pages,
      sessions: this.sessions,
      log_entries: this.logEntries,
      log_appends: mem.read64(this.header, H.LOG_SEQ),
      doc_reads: mem.read64(this.header, H.DOC_READS),
      session_writes: mem.read64(this.header, H.SESSION_WRITES),
    };
  }

  verifyAll(): number {
    let bad = 0;
    const fail = (what: string): void => {
      bad++;
      this.os.countError(what);
    };
    for (let d = 0; d < this.docs.pages; d++) if (!this.checkDoc(d)) fail(`web document ${d} is corrupt`);
    for (let e = 0; e < this.logEntries; e++) if (!this.checkLogEntry(e)) fail(`web log entry ${e} is stale or corrupt`);
    for (let s = 0; s < this.sessions; s++) if (!this.checkSession(s)) fail(`web session ${s} is stale or corrupt`);
    return bad;
  }

  private checkDoc(doc: number): boolean {
    const { mem } = this.os;
    const pfn = this.docs.pfns[doc];
    return mem.read32(pfn, 0) === doc && mem.readU32(pfn, DOC_CHECKSUM_WORD) === mem.checksumWords(pfn, DOC_PAYLOAD, WORDS_PER_PAGE);
  }

  private appendLog(): void {
    const { mem } = this.os;
    const seq = mem.read64(this.header, H.LOG_SEQ);
    const slot = seq % this.logEntries;
    if (!this.checkLogEntry(slot)) this.os.countError(`web log entry ${slot} was stale or corrupt when overwritten`);
    writeRecord(mem, this.log.pfns[Math.floor(slot / ENTRIES_PER_PAGE)], (slot % ENTRIES_PER_PAGE) * ENTRY_WORDS, ENTRY_WORDS, slot, seq | 0, this.os.seed);
    mem.write64(this.header, H.LOG_SEQ, seq + 1);
  }

  /** A log slot must hold the newest entry that maps to it, or nothing if none was written yet. */
  private checkLogEntry(slot: number): boolean {
    const { mem } = this.os;
    const next = mem.read64(this.header, H.LOG_SEQ);
    const pfn = this.log.pfns[Math.floor(slot / ENTRIES_PER_PAGE)];
    const base = (slot % ENTRIES_PER_PAGE) * ENTRY_WORDS;
    if (next <= slot) return true;
    const expected = next - 1 - ((next - 1 - slot) % this.logEntries);
    return checkRecord(mem, pfn, base, ENTRY_WORDS, slot, this.os.seed) === (expected | 0);
  }

  private writeSession(s: number): void {
    const { mem } = this.os;
    if (!this.checkSession(s)) this.os.countError(`web session ${s} was stale or corrupt when rewritten`);
    const vpfn = this.sessionVersions.pfns[s >>> 10];
    const version = (mem.read32(vpfn, s & 1023) + 1) | 0;
    mem.write32(vpfn, s & 1023, version);
    writeRecord(mem, this.sessionRecords.pfns[Math.floor(s / ENTRIES_PER_PAGE)], (s % ENTRIES_PER_PAGE) * ENTRY_WORDS, ENTRY_WORDS, s, version, this.os.seed);
    mem.add64(this.header, H.SESSION_WRITES, 1);
  }

  private checkSession(s: number): boolean {
    const { mem } = this.os;
    const expected = mem.read32(this.sessionVersions.pfns[s >>> 10], s & 1023);
    const pfn = this.sessionRecords.pfns[Math.floor(s / ENTRIES_PER_PAGE)];
    return checkRecord(mem, pfn, (s % ENTRIES_PER_PAGE) * ENTRY_WORDS, ENTRY_WORDS, s, this.os.seed) === expected;
  }
}

export const webProgram: WorkloadProgram = {
  async format(os) {
    const { mem, allocator } = os;
    const params = webParams(os.spec, os.maxPages);
    const budget = os.workloadBudgetPages() - 1;
    const sessionPages = Math.max(1, Math.round(budget * params.sessionFraction));
    const sessions = sessionPages * ENTRIES_PER_PAGE;
    const versionPages = Math.ceil(sessions / WORDS_PER_PAGE);
    const logPages = Math.max(1, Math.round(budget * params.logFraction));
    const docPages = budget - Region.footprint(sessionPages) - Region.footprint(versionPages) - Region.footprint(logPages) - 3;
    let docs = Math.max(1, docPages);
    while (docs > 1 && Region.footprint(docs) > docPages) docs--;
    if (docs < 1) throw new Error('web: not enough memory for any document');

    const header = allocator.alloc();
    if (header < 0) throw new Error('out of memory for the web header');
    mem.zeroPage(header);
    const pause = (): Promise<void> => os.pausePoint();
    const seed = os.seed;
    const docRegion = await Region.create(
      mem,
      allocator,
      docs,
      (pfn, i) => {
        const sum = mem.fillWords(pfn, DOC_PAYLOAD, WORDS_PER_PAGE, hash3(seed, i, 0xd0c));
        mem.write32(pfn, 0, i);
        mem.write32(pfn, DOC_CHECKSUM_WORD, sum);
      },
      pause,
    );
    const logRegion = await Region.create(mem, allocator, logPages, (pfn) => mem.zeroPage(pfn), pause);
    const sessionRegion = await Region.create(
      mem,
      allocator,
      sessionPages,
      (pfn, page) => {
        for (let r = 0; r < ENTRIES_PER_PAGE; r++) writeRecord(mem, pfn, r * ENTRY_WORDS, ENTRY_WORDS, page * ENTRIES_PER_PAGE + r, 1, seed);
      },
      pause,
    );
    const versionRegion = await Region.create(
      mem,
      allocator,
      versionPages,
      (pfn) => {
        for (let w = 0; w < WORDS_PER_PAGE; w++) mem.write32(pfn, w, 1);
      },
      pause,
    );
    mem.write32(header, H.DOCS_ROOT, docRegion.rootPfn);
    mem.write32(header, H.LOG_ROOT, logRegion.rootPfn);
    mem.write32(header, H.SESSIONS_ROOT, sessionRegion.rootPfn);
    mem.write32(header, H.SESSION_VERSIONS_ROOT, versionRegion.rootPfn);
    mem.write32(header, HEADER_MAGIC_WORD, MAGIC);
    return { workload: new Web(os, header, docRegion, logRegion, sessionRegion, versionRegion, params), rootPfn: header };
  },
  open(os, rootPfn) {
    const { mem } = os;
    if (mem.read32(rootPfn, HEADER_MAGIC_WORD) !== MAGIC) throw new GuestFault(rootPfn, 'web header has a bad magic');
    return new Web(
      os,
      rootPfn,
      Region.open(mem, mem.read32(rootPfn, H.DOCS_ROOT)),
      Region.open(mem, mem.read32(rootPfn, H.LOG_ROOT)),
      Region.open(mem, mem.read32(rootPfn, H.SESSIONS_ROOT)),
      Region.open(mem, mem.read32(rootPfn, H.SESSION_VERSIONS_ROOT)),
      webParams(os.spec, os.maxPages),
    );
  },
};
