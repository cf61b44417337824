// db: an OLTP-like database. Table pages live in a "data file" (the OS page cache of the database
// file, in guest memory) and are worked on through a buffer pool with clock replacement. Each
// transaction updates one row of a page chosen by the two-tier model (pool hit, or a miss that
// writes a dirty victim back and reads the page in), appends a record to the WAL ring, and reads
// and checks a row of another page. Every few seconds a checkpoint writes all dirty buffers back
// to the data file, a few per transaction (PostgreSQL's spread checkpoints), giving periodic
// write bursts. Rows carry versions that are checked against a shadow array, so a lost update in
// the pool or the file is caught when the row is read or the page is read in.
//
// Memory: pool 30% of the workload's pages (shared_buffers-like), WAL 5%, data file the rest.
// Defaults (shared/reference/literature.md §5c, "jbb / OLTP" row: 80% resident, hot set 5-10%,
// ~0.1% of RAM dirtied per second):
//  - writeRate: 0.001 transactions/s per guest page (65/s at 256 MiB). Measured with
//    libs/guest/bench/dirty-profile.ts at 256 MiB: 0.13-0.16% of memory dirtied per second,
//    0.4% in a second with a checkpoint, near that row's 0.1%/s. (A transaction dirties its
//    buffer, a shadow-version page and the WAL page, and misses replace buffers.)
//  - hotSetFraction 0.05 of the table pages, 90% of accesses to it, zipfS 0.99 inside it.
//  - checkpoints every 5 s (PostgreSQL's checkpoint_timeout of 5 min scaled down 60× so a
//    benchmark of tens of seconds sees several).

import type { WorkloadSpec } from '@ferry/hypervisor';
import { hash3 } from '../checksum';
import type { GuestOs } from '../guest-os';
import { GuestFault } from '../phys-mem';
import { WORDS_PER_PAGE } from '../platform';
import { Popularity } from '../popularity';
import { checkRecord, writeRecord } from '../records';
import { Region } from '../region';
import { HEADER_MAGIC_WORD, orDefault, type Workload, type WorkloadProgram } from './workload';

const MAGIC = 0x31304244; // "DB01"
const H = {
  FILE_ROOT: 1,
  POOL_ROOT: 2,
  DESC_ROOT: 3,
  MAP_ROOT: 4,
  SHADOW_ROOT: 5,
  WAL_ROOT: 6,
  CLOCK_HAND: 7,
  LSN: 8, // 64-bit
  CHECKPOINTING: 10,
  FLUSH_CURSOR: 11,
  NEXT_CHECKPOINT_MS: 12, // 64-bit, uptime
  CHECKPOINTS: 14, // 64-bit
  HITS: 16, // 64-bit
  MISSES: 18, // 64-bit
  WRITEBACKS: 20, // 64-bit
  CHECKPOINT_LSN: 22, // 64-bit
} as const;
const ROWS_PER_PAGE = 8;
const ROW_WORDS = WORDS_PER_PAGE / ROWS_PER_PAGE;
/** Buffer descriptor words: table page + 1 (0 = empty), dirty, referenced (clock bit), spare. */
const DESC_WORDS = 4;
const D_PAGE = 0;
const D_DIRTY = 1;
const D_REF = 2;
const WAL_WORDS = 16;
const WAL_PER_PAGE = WORDS_PER_PAGE / WAL_WORDS;
const FLUSH_PER_STEP = 8;

export interface DbParams {
  rate: number;
  hotSetFraction: number;
  hotShare: number;
  zipfS: number;
  phaseSeconds: number;
  checkpointSeconds: number;
  poolFraction: number;
  walFraction: number;
}

export function dbParams(spec: WorkloadSpec, maxPages: number): DbParams {
  return {
    rate: orDefault(spec.writeRate, Math.max(20, Math.round(maxPages * 0.001))),
    hotSetFraction: Math.min(1, orDefault(spec.hotSetFraction, 0.05)),
    hotShare: 0.9,
    zipfS: orDefault(spec.zipfS, 0.99),
    phaseSeconds: orDefault(spec.phaseSeconds, 0),
    checkpointSeconds: 5,
    poolFraction: 0.3,
    walFraction: 0.05,
  };
}

interface DbRegions {
  file: Region;
  pool: Region;
  desc: Region;
  map: Region;
  shadow: Region;
  wal: Region;
}

class Db implements Workload {
  readonly kind = 'db' as const;
  readonly rate: number;
  private readonly popularity: Popularity;
  private readonly tablePages: number;
  private readonly buffers: number;
  private readonly walEntries: number;

  constructor(
    private readonly os: GuestOs,
    private readonly header: number,
    private readonly r: DbRegions,
    private readonly params: DbParams,
  ) {
    this.rate = params.rate;
    this.tablePages = r.file.pages;
    this.buffers = r.pool.pages;
    this.walEntries = r.wal.pages * WAL_PER_PAGE;
    this.popularity = new Popularity({ items: this.tablePages, hotFraction: params.hotSetFraction, zipfS: params.zipfS, hotShare: params.hotShare });
  }

  step(): void {
    const { os } = this;
    const { mem, prng } = os;
    const phase = os.phase(this.params.phaseSeconds);

    // Update one row.
    const page = this.popularity.pick(prng, phase);
    const buf = this.pin(page);
    const row = prng.nextInt(ROWS_PER_PAGE);
    if (!this.checkRow(this.r.pool.pfns[buf], page, row)) os.countError(`db row ${page}/${row} was stale or corrupt when updated`);
    const id = page * ROWS_PER_PAGE + row;
    const spfn = this.r.shadow.pfns[id >>> 10];
    const version = (mem.read32(spfn, id & 1023) + 1) | 0;
    mem.write32(spfn, id & 1023, version);
    writeRecord(mem, this.r.pool.pfns[buf], row * ROW_WORDS, ROW_WORDS, id, version, os.seed);
    this.setDesc(buf, D_DIRTY, 1);
    this.appendWal(id, version);

    // Read and check a row of another page.
    const other = this.popularity.pick(prng, phase);
    const obuf = this.pin(other);
    const orow = prng.nextInt(ROWS_PER_PAGE);
    if (!this.checkRow(this.r.pool.pfns[obuf], other, orow)) os.countError(`db row ${other}/${orow} is stale or corrupt (buffer ${obuf})`);

    this.checkpointWork();
  }

  /** Boot: reads table page `page` into the pool. */
  warm(page: number): void {
    this.pin(page);
  }

  stats(): Record<string, number | string> {
    const { mem } = this.os;
    const h = this.header;
    return {
      table_pages: this.tablePages,
      buffers: this.buffers,
      lsn: mem.read64(h, H.LSN),
      hits: mem.read64(h, H.HITS),
      misses: mem.read64(h, H.MISSES),
      writebacks: mem.read64(h, H.WRITEBACKS),
      checkpoints: mem.read64(h, H.CHECKPOINTS),
    };
  }

  verifyAll(): number {
    const { mem } = this.os;
    let bad = 0;
    const fail = (what: string): void => {
      bad++;
      this.os.countError(what);
    };
    // Each table page's current rows are in its buffer if it has one, else in the file.
    for (let page = 0; page < this.tablePages; page++) {
      const mapped = mem.read32(this.r.map.pfns[page >>> 10], page & 1023);
      if (mapped < 0 || mapped > this.buffers) {
        fail(`db page map entry of page ${page} is corrupt (${mapped})`);
        continue;
      }
      const pfn = mapped > 0 ? this.r.pool.pfns[mapped - 1] : this.r.file.pfns[page];
      if (mapped > 0 && this.desc(mapped - 1, D_PAGE) !== page + 1) fail(`db buffer ${mapped - 1} does not hold page ${page} it is mapped to`);
      for (let row = 0; row < ROWS_PER_PAGE; row++) if (!this.checkRow(pfn, page, row)) fail(`db row ${page}/${row} is stale or corrupt`);
    }
    for (let e = 0; e < this.walEntries; e++) if (!this.checkWal(e)) fail(`db WAL entry ${e} is stale or corrupt`);
    return bad;
  }

  // ---- buffer pool ----

  /** The buffer holding table page `page`, reading it in (and evicting a victim) on a miss. */
  private pin(page: number): number {
    const { mem } = this.os;
    const mpfn = this.r.map.pfns[page >>> 10];
    const mapped = mem.read32(mpfn, page & 1023);
    if (mapped < 0 || mapped > this.buffers) throw new GuestFault(mpfn, `db page map entry of page ${page} is corrupt (${mapped})`);
    if (mapped > 0) {
      const buf = mapped - 1;
      if (this.desc(buf, D_REF) === 0) this.setDesc(buf, D_REF, 1);
      mem.add64(this.header, H.HITS, 1);
      return buf;
    }
    const buf = this.victim();
    const old = this.desc(buf, D_PAGE) - 1;
    if (old >= this.tablePages) throw new GuestFault(this.r.desc.pfns[0], `db buffer ${buf} descriptor is corrupt (page ${old})`);
    if (old >= 0) {
      if (this.desc(buf, D_DIRTY) !== 0) this.writeBack(buf, old);
      mem.write32(this.r.map.pfns[old >>> 10], old & 1023, 0);
    }
    mem.copyPage(this.r.pool.pfns[buf], this.r.file.pfns[page]);
    for (let row = 0; row < ROWS_PER_PAGE; row++) {
      if (!this.checkRow(this.r.pool.pfns[buf], page, row)) this.os.countError(`db row ${page}/${row} read in from the data file is stale or corrupt`);
    }
    this.setDesc(buf, D_PAGE, page + 1);
    this.setDesc(buf, D_DIRTY, 0);
    this.setDesc(buf, D_REF, 1);
    mem.write32(mpfn, page & 1023, buf + 1);
    mem.add64(this.header, H.MISSES, 1);
    return buf;
  }

  /** Clock replacement: the first buffer whose reference bit is clear, clearing bits on the way. */
  private victim(): number {
    const { mem } = this.os;
    let hand = mem.read32(this.header, H.CLOCK_HAND);
    for (let scanned = 0; ; scanned++) {
      const buf = hand;
      hand = hand + 1 === this.buffers ? 0 : hand + 1;
      if (this.desc(buf, D_PAGE) === 0 || this.desc(buf, D_REF) === 0 || scanned >= 2 * this.buffers) {
        mem.write32(this.header, H.CLOCK_HAND, hand);
        return buf;
      }
      this.setDesc(buf, D_REF, 0);
    }
  }

  private writeBack(buf: number, page: number): void {
    const { mem } = this.os;
    mem.copyPage(this.r.file.pfns[page], this.r.pool.pfns[buf]);
    this.setDesc(buf, D_DIRTY, 0);
    mem.add64(this.header, H.WRITEBACKS, 1);
  }

  /** Starts a checkpoint when one is due; writes back a few dirty buffers per step while one runs. */
  private checkpointWork(): void {
    const { mem } = this.os;
    const h = this.header;
    if (mem.read32(h, H.CHECKPOINTING) === 0) {
      if (this.os.uptimeMs() < mem.read64(h, H.NEXT_CHECKPOINT_MS)) return;
      mem.write32(h, H.CHECKPOINTING, 1);
      mem.write32(h, H.FLUSH_CURSOR, 0);
      mem.write64(h, H.CHECKPOINT_LSN, mem.read64(h, H.LSN));
    }
    let cursor = mem.read32(h, H.FLUSH_CURSOR);
    let flushed = 0;
    while (cursor < this.buffers && flushed < FLUSH_PER_STEP) {
      const page = this.desc(cursor, D_PAGE) - 1;
      if (page >= 0 && this.desc(cursor, D_DIRTY) !== 0) {
        this.writeBack(cursor, page);
        flushed++;
      }
      cursor++;
    }
    mem.write32(h, H.FLUSH_CURSOR, cursor);
    if (cursor >= this.buffers) {
      mem.write32(h, H.CHECKPOINTING, 0);
      mem.add64(h, H.CHECKPOINTS, 1);
      mem.write64(h, H.NEXT_CHECKPOINT_MS, this.os.uptimeMs() + this.params.checkpointSeconds * 1000);
    }
  }

  private desc(buf: number, field: number): number {
    const w = buf * DESC_WORDS + field;
    return this.os.mem.read32(this.r.desc.pfns[w >>> 10], w & 1023);
  }

  private setDesc(buf: number, field: number, value: number): void {
    const w = buf * DESC_WORDS + field;
    this.os.mem.write32(this.r.desc.pfns[w >>> 10], w & 1023, value);
  }

  // ---- rows and WAL ----

  private checkRow(pfn: number, page: number, row: number): boolean {
    const { mem } = this.os;
    const id = page * ROWS_PER_PAGE + row;
    const expected = mem.read32(this.r.shadow.pfns[id >>> 10], id & 1023);
    return checkRecord(mem, pfn, row * ROW_WORDS, ROW_WORDS, id, this.os.seed) === expected;
  }

  private appendWal(rowId: number, version: number): void {
    const { mem } = this.os;
    const lsn = mem.read64(this.header, H.LSN);
    const slot = lsn % this.walEntries;
    if (!this.checkWal(slot)) this.os.countError(`db WAL entry ${slot} was stale or corrupt when overwritten`);
    const pfn = this.r.wal.pfns[Math.floor(slot / WAL_PER_PAGE)];
    const base = (slot % WAL_PER_PAGE) * WAL_WORDS;
    mem.write32(pfn, base, lsn | 0);
    mem.write32(pfn, base + 1, rowId);
    mem.write32(pfn, base + 2, version);
    mem.write32(pfn, base + 3, hash3(lsn | 0, rowId, version));
    mem.write64(this.header, H.LSN, lsn + 1);
  }

  /** A WAL slot holds the newest record mapping to it (or nothing yet). */
  private checkWal(slot: number): boolean {
    const { mem } = this.os;
    const next = mem.read64(this.header, H.LSN);
    if (next <= slot) return true;
    const expected = next - 1 - ((next - 1 - slot) % this.walEntries);
    const pfn = this.r.wal.pfns[Math.floor(slot / WAL_PER_PAGE)];
    const base = (slot % WAL_PER_PAGE) * WAL_WORDS;
    const lsn = mem.read32(pfn, base);
    return lsn === (expected | 0) && mem.readU32(pfn, base + 3) === hash3(lsn, mem.read32(pfn, base + 1), mem.read32(pfn, base + 2));
  }
}

export const dbProgram: WorkloadProgram = {
  async format(os) {
    const { mem, allocator } = os;
    const params = dbParams(os.spec, os.maxPages);
    // Even a guest that asked for no used memory gets a small table (32 pages in all).
    const budget = Math.max(32, os.workloadBudgetPages() - 1);
    const walPages = Math.max(1, Math.round(budget * params.walFraction));
    let poolPages = Math.max(1, Math.round(budget * params.poolFraction));
    // The rest is the data file plus its per-page metadata (map: 1 word, shadow: 8 words per page).
    const fits = (file: number): boolean =>
      Region.footprint(file) +
        Region.footprint(Math.ceil(file / WORDS_PER_PAGE)) +
        Region.footprint(Math.ceil((file * ROWS_PER_PAGE) / WORDS_PER_PAGE)) +
        Region.footprint(poolPages) +
        Region.footprint(Math.ceil((poolPages * DESC_WORDS) / WORDS_PER_PAGE)) +
        Region.footprint(walPages) <=
      budget;
    let filePages = Math.max(1, budget - poolPages - walPages);
    while (filePages > 1 && !fits(filePages)) filePages--;
    if (poolPages > filePages) poolPages = filePages;
    if (!fits(filePages)) throw new Error('db: not enough memory for a table');

    const header = allocator.alloc();
    if (header < 0) throw new Error('out of memory for the db header');
    mem.zeroPage(header);
    const pause = (): Promise<void> => os.pausePoint();
    const zero = (pfn: number): void => mem.zeroPage(pfn);
    const seed = os.seed;
    const shadow = await Region.create(
      mem,
      allocator,
      Math.ceil((filePages * ROWS_PER_PAGE) / WORDS_PER_PAGE),
      (pfn) => {
        for (let w = 0; w < WORDS_PER_PAGE; w++) mem.write32(pfn, w, 1);
      },
      pause,
    );
    const file = await Region.create(
      mem,
      allocator,
      filePages,
      (pfn, page) => {
        for (let row = 0; row < ROWS_PER_PAGE; row++) writeRecord(mem, pfn, row * ROW_WORDS, ROW_WORDS, page * ROWS_PER_PAGE + row, 1, seed);
      },
      pause,
    );
    const map = await Region.create(mem, allocator, Math.ceil(filePages / WORDS_PER_PAGE), zero, pause);
    const pool = await Region.create(mem, allocator, poolPages, zero, pause);
    const desc = await Region.create(mem, allocator, Math.ceil((poolPages * DESC_WORDS) / WORDS_PER_PAGE), zero, pause);
    const wal = await Region.create(mem, allocator, walPages, zero, pause);
    mem.write32(header, H.FILE_ROOT, file.rootPfn);
    mem.write32(header, H.POOL_ROOT, pool.rootPfn);
    mem.write32(header, H.DESC_ROOT, desc.rootPfn);
    mem.write32(header, H.MAP_ROOT, map.rootPfn);
    mem.write32(header, H.SHADOW_ROOT, shadow.rootPfn);
    mem.write32(header, H.WAL_ROOT, wal.rootPfn);
    mem.write64(header, H.NEXT_CHECKPOINT_MS, os.uptimeMs() + params.checkpointSeconds * 1000);
    mem.write32(header, HEADER_MAGIC_WORD, MAGIC);
    const db = new Db(os, header, { file, pool, desc, map, shadow, wal }, params);
    // Warm the pool with the first table pages (the phase-0 hot set comes first).
    for (let page = 0; page < Math.min(poolPages, filePages); page++) {
      db.warm(page);
      if ((page & 255) === 255) await pause();
    }
    return { workload: db, rootPfn: header };
  },
  open(os, rootPfn) {
    const { mem } = os;
    if (mem.read32(rootPfn, HEADER_MAGIC_WORD) !== MAGIC) throw new GuestFault(rootPfn, 'db header has a bad magic');
    const open = (word: number): Region => Region.open(mem, mem.read32(rootPfn, word));
    const regions = { file: open(H.FILE_ROOT), pool: open(H.POOL_ROOT), desc: open(H.DESC_ROOT), map: open(H.MAP_ROOT), shadow: open(H.SHADOW_ROOT), wal: open(H.WAL_ROOT) };
    return new Db(os, rootPfn, regions, dbParams(os.spec, os.maxPages));
  },
};
