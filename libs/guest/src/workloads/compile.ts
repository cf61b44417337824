// compile: a `make -j4`-like churn through the guest's page allocator. Four jobs each write a file
// of 4..N pages (N grows with memory, up to 1020), one page per step; a finished file is either kept in the page
// cache (60%: objects, outputs) or deleted (40%: temporaries). The page cache holds files in a
// FIFO; when the workload's memory budget is reached, or the allocator has nothing left (the
// balloon took it), the oldest file is evicted. So free memory keeps moving: pages are freed and
// reallocated all over the guest, and a free page's old contents stay behind it.
// Each data page carries its file id, index and a checksum of its contents; files are checked
// page by page before they are freed, so stale or corrupt pages are counted.
//
// Defaults (shared/reference/literature.md §5a/§5c, compile: page cache grows to ~5 GB of 8 GB
// over a 5 min make -j4 ≈ 0.2% of memory per second):
//  - writeRate: 0.0035 page writes/s per guest page (0.2%/s that stays in the cache is 60% of
//    what is written);
//  - at boot the cache is filled up to the workload's share of memory, (1 - freeFraction).

import type { WorkloadSpec } from '@ferry/hypervisor';
import { hash3 } from '../checksum';
import type { GuestOs } from '../guest-os';
import { GuestFault } from '../phys-mem';
import { WORDS_PER_PAGE } from '../platform';
import { HEADER_MAGIC_WORD, orDefault, type Workload, type WorkloadProgram } from './workload';

const MAGIC = 0x31504d43; // "CMP1"
const INODE_MAGIC = 0x444f4e49; // "INOD"
const H = {
  CACHE_HEAD: 1, // ring index of the oldest cached file (monotonic; slot = index % capacity)
  CACHE_TAIL: 2,
  NEXT_FILE_ID: 3,
  HELD_PAGES: 4, // pages held by files (data + inodes)
  BUDGET: 5,
  /** Files are 4..FILE_PAGES pages: scaled with the budget so the cache ring can fill it. */
  FILE_PAGES: 16,
  FILES_KEPT: 6, // 64-bit
  FILES_DELETED: 8, // 64-bit
  EVICTIONS: 10, // 64-bit
  STALLS: 12, // 64-bit
  PAGES_WRITTEN: 14, // 64-bit
  JOBS: 32, // JOBS..JOBS+JOB_SLOTS*JOB_WORDS-1
  RING: 64, // RING..1023: inode pfns of cached files
} as const;
const JOB_SLOTS = 4;
const JOB_WORDS = 4;
const J_INODE = 0; // inode pfn + 1, 0 = idle slot
const J_TARGET = 1;
const J_KEEP = 2;
const RING_CAPACITY = WORDS_PER_PAGE - H.RING;
const I_PFNS_WORD = 4;
const I = { MAGIC: 0, FILE_ID: 1, PAGES: 2, PFNS: I_PFNS_WORD } as const;
/** Largest file an inode can list. */
const MAX_FILE_PAGES = WORDS_PER_PAGE - I_PFNS_WORD;
const D = { FILE_ID: 0, INDEX: 1, CHECKSUM: 2, PAYLOAD: 3 } as const;
const R_JOB = 0;

export interface CompileParams {
  rate: number;
  keepShare: number;
}

export function compileParams(spec: WorkloadSpec, maxPages: number): CompileParams {
  return { rate: orDefault(spec.writeRate, Math.max(20, Math.round(maxPages * 0.0035))), keepShare: 0.6 };
}

class Compile implements Workload {
  readonly kind = 'compile' as const;
  readonly rate: number;

  constructor(
    private readonly os: GuestOs,
    private readonly header: number,
    private readonly params: CompileParams,
  ) {
    this.rate = params.rate;
  }

  step(): void {
    const { os, header } = this;
    const { mem, vcpu } = os;
    const slot = vcpu.reg(R_JOB) % JOB_SLOTS;
    vcpu.setReg(R_JOB, slot + 1);
    const j = H.JOBS + slot * JOB_WORDS;
    const inodeLink = mem.read32(header, j + J_INODE);
    if (inodeLink === 0) {
      this.startJob(j);
      return;
    }
    const inode = inodeLink - 1;
    const pfn = this.allocPage();
    if (pfn < 0) {
      mem.add64(header, H.STALLS, 1);
      return;
    }
    const fileId = mem.read32(inode, I.FILE_ID);
    const index = mem.read32(inode, I.PAGES);
    const sum = mem.fillWords(pfn, D.PAYLOAD, WORDS_PER_PAGE, hash3(fileId, index, os.seed));
    mem.write32(pfn, D.FILE_ID, fileId);
    mem.write32(pfn, D.INDEX, index);
    mem.write32(pfn, D.CHECKSUM, sum);
    mem.write32(inode, I.PFNS + index, pfn);
    mem.write32(inode, I.PAGES, index + 1);
    mem.add64(header, H.PAGES_WRITTEN, 1);
    if (index + 1 < mem.read32(header, j + J_TARGET)) return;
    // The job is done: keep its output in the page cache, or delete the temporary.
    mem.write32(header, j + J_INODE, 0);
    if (mem.read32(header, j + J_KEEP) !== 0) {
      if (this.cachedFiles() >= RING_CAPACITY) this.evictOldest();
      const tail = mem.read32(header, H.CACHE_TAIL);
      mem.write32(header, H.RING + (tail % RING_CAPACITY), inode);
      mem.write32(header, H.CACHE_TAIL, tail + 1);
      mem.add64(header, H.FILES_KEPT, 1);
    } else {
      this.deleteFile(inode);
      mem.add64(header, H.FILES_DELETED, 1);
    }
  }

  stats(): Record<string, number | string> {
    const { mem } = this.os;
    const h = this.header;
    return {
      cached_files: this.cachedFiles(),
      held_pages: mem.read32(h, H.HELD_PAGES),
      budget_pages: mem.read32(h, H.BUDGET),
      files_kept: mem.read64(h, H.FILES_KEPT),
      files_deleted: mem.read64(h, H.FILES_DELETED),
      evictions: mem.read64(h, H.EVICTIONS),
      stalls: mem.read64(h, H.STALLS),
      pages_written: mem.read64(h, H.PAGES_WRITTEN),
    };
  }

  verifyAll(): number {
    const { mem } = this.os;
    const h = this.header;
    let bad = 0;
    let held = 0;
    const head = mem.read32(h, H.CACHE_HEAD);
    const tail = mem.read32(h, H.CACHE_TAIL);
    for (let i = head; i < tail; i++) {
      const inode = mem.read32(h, H.RING + (i % RING_CAPACITY));
      bad += this.checkFile(inode);
      held += 1 + mem.read32(inode, I.PAGES);
    }
    for (let s = 0; s < JOB_SLOTS; s++) {
      const link = mem.read32(h, H.JOBS + s * JOB_WORDS + J_INODE);
      if (link === 0) continue;
      bad += this.checkFile(link - 1);
      held += 1 + mem.read32(link - 1, I.PAGES);
    }
    if (held !== mem.read32(h, H.HELD_PAGES)) {
      bad++;
      this.os.countError(`compile: files hold ${held} pages, the header says ${mem.read32(h, H.HELD_PAGES)}`);
    }
    return bad;
  }

  /** Boot: writes files until the cache fills the budget. */
  async fill(): Promise<void> {
    const { mem } = this.os;
    let steps = 0;
    while (mem.read64(this.header, H.EVICTIONS) === 0 && this.cachedFiles() < RING_CAPACITY - JOB_SLOTS) {
      this.step();
      if ((++steps & 255) === 0) await this.os.pausePoint();
    }
  }

  private cachedFiles(): number {
    const { mem } = this.os;
    return mem.read32(this.header, H.CACHE_TAIL) - mem.read32(this.header, H.CACHE_HEAD);
  }

  private startJob(j: number): void {
    const { os, header } = this;
    const { mem, prng } = os;
    const inode = this.allocPage();
    if (inode < 0) {
      mem.add64(header, H.STALLS, 1);
      return;
    }
    const fileId = mem.read32(header, H.NEXT_FILE_ID);
    mem.write32(header, H.NEXT_FILE_ID, fileId + 1);
    mem.zeroPage(inode);
    mem.write32(inode, I.MAGIC, INODE_MAGIC);
    mem.write32(inode, I.FILE_ID, fileId);
    mem.write32(header, j + J_TARGET, 4 + prng.nextInt(mem.read32(header, H.FILE_PAGES) - 3));
    mem.write32(header, j + J_KEEP, prng.nextFloat() < this.params.keepShare ? 1 : 0);
    mem.write32(header, j + J_INODE, inode + 1);
  }

  /** A page for a file: over budget or out of memory, the oldest cached file is evicted first. */
  private allocPage(): number {
    const { mem, allocator } = this.os;
    const h = this.header;
    while (mem.read32(h, H.HELD_PAGES) >= mem.read32(h, H.BUDGET) || allocator.freePages === 0) {
      if (this.cachedFiles() === 0) break;
      this.evictOldest();
    }
    const pfn = allocator.alloc();
    if (pfn >= 0) mem.add32(h, H.HELD_PAGES, 1);
    return pfn;
  }

  private evictOldest(): void {
    const { mem } = this.os;
    const h = this.header;
    const head = mem.read32(h, H.CACHE_HEAD);
    const inode = mem.read32(h, H.RING + (head % RING_CAPACITY));
    mem.write32(h, H.CACHE_HEAD, head + 1);
    this.deleteFile(inode);
    mem.add64(h, H.EVICTIONS, 1);
  }

  /** Checks a file's pages, then frees them and its inode. */
  private deleteFile(inode: number): void {
    const { mem, allocator } = this.os;
    const bad = this.checkFile(inode);
    const pages = mem.read32(inode, I.PAGES);
    if (bad === 0) {
      for (let i = 0; i < pages; i++) allocator.free(mem.read32(inode, I.PFNS + i));
      allocator.free(inode);
      mem.add32(this.header, H.HELD_PAGES, -(pages + 1));
    } else {
      // Its page list cannot be trusted: leak the file rather than free pages someone else owns.
      this.os.platform.log(`compile: leaking file at inode ${inode}, it failed its check`);
    }
  }

  /** Failures among a file's pages (each counted as an error). */
  private checkFile(inode: number): number {
    const { mem } = this.os;
    if (mem.read32(inode, I.MAGIC) !== INODE_MAGIC) {
      this.os.countError(`compile inode ${inode} has a bad magic`);
      return 1;
    }
    const fileId = mem.read32(inode, I.FILE_ID);
    const pages = mem.read32(inode, I.PAGES);
    let bad = 0;
    if (pages < 0 || pages > MAX_FILE_PAGES) {
      this.os.countError(`compile inode ${inode} is corrupt (${pages} pages)`);
      return 1;
    }
    for (let i = 0; i < pages; i++) {
      const pfn = mem.read32(inode, I.PFNS + i);
      if (
        !mem.isPopulated(pfn) ||
        mem.read32(pfn, D.FILE_ID) !== fileId ||
        mem.read32(pfn, D.INDEX) !== i ||
        mem.readU32(pfn, D.CHECKSUM) !== mem.checksumWords(pfn, D.PAYLOAD, WORDS_PER_PAGE)
      ) {
        bad++;
        this.os.countError(`compile file ${fileId} page ${i} (pfn ${pfn}) is stale or corrupt`);
      }
    }
    return bad;
  }
}

export const compileProgram: WorkloadProgram = {
  async format(os) {
    const { mem, allocator } = os;
    const header = allocator.alloc();
    if (header < 0) throw new Error('out of memory for the compile header');
    mem.zeroPage(header);
    const budget = Math.max(JOB_SLOTS * 2, os.workloadBudgetPages() - 1);
    mem.write32(header, H.BUDGET, budget);
    // About 1.5 budgets' worth of files fit in the ring (mean file size is half the largest).
    mem.write32(header, H.FILE_PAGES, Math.max(8, Math.min(MAX_FILE_PAGES, Math.ceil((3 * budget) / RING_CAPACITY))));
    mem.write32(header, HEADER_MAGIC_WORD, MAGIC);
    const compile = new Compile(os, header, compileParams(os.spec, os.maxPages));
    await compile.fill();
    return { workload: compile, rootPfn: header };
  },
  open(os, rootPfn) {
    if (os.mem.read32(rootPfn, HEADER_MAGIC_WORD) !== MAGIC) throw new GuestFault(rootPfn, 'compile header has a bad magic');
    return new Compile(os, rootPfn, compileParams(os.spec, os.maxPages));
  },
};
