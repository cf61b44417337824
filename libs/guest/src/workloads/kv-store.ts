// A hash table of 512-byte records in guest memory: the kv workload's store.
//
// Header page (words): see H. Records live in a region of pages, 8 per page; buckets (chain heads)
// in another; record ids are 0-based and links store id+1 (0 = none). Internal records (the
// preloaded data of the built-in client, keys "i<n>") are ids 0..internalKeys-1 and have a shadow
// version array (a third region) so that a lost update is caught, not just a torn one. External
// records are the ones clients SET over TCP: they are never evicted; when the store is full an
// internal record is evicted to make room (a cache evicting its least precious items).
//
// Record (words): 0 state, 1 key hash, 2 next (id+1), 3 key length | value length << 16,
// 4 version, 5 checksum, 6 internal index, 7 spare, 8..23 key bytes, 24..127 value bytes.
// checksum = hash(words 8..127, key hash, lengths, version, internal index).

import { fnv1a, hash3, mix32 } from '../checksum';
import type { GuestOs } from '../guest-os';
import { KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES } from '../kv-protocol';
import { GuestFault, type PhysMem } from '../phys-mem';
import { WORDS_PER_PAGE } from '../platform';
import { Region } from '../region';

const MAGIC = 0x3153564b; // "KVS1"
const H = {
  MAGIC: 0,
  RECORDS_ROOT: 1,
  BUCKETS_ROOT: 2,
  VERSIONS_ROOT: 3,
  CAPACITY: 4,
  BUCKETS: 5,
  INTERNAL_KEYS: 6,
  FREE_HEAD: 7,
  NEXT_UNUSED: 8,
  LIVE: 9,
  EXTERNAL_LIVE: 10,
  EVICT_CURSOR: 11,
  EXTERNAL_SETS: 12, // 64-bit
  GETS: 14, // 64-bit
  DELS: 16, // 64-bit
  EVICTIONS: 18, // 64-bit
  INTERNAL_WRITES: 20, // 64-bit
} as const;

export const RECORD_WORDS = 128;
const RECORDS_PER_PAGE = WORDS_PER_PAGE / RECORD_WORDS;
const R = { STATE: 0, HASH: 1, NEXT: 2, LENGTHS: 3, VERSION: 4, CHECKSUM: 5, INDEX: 6, KEY: 8, VALUE: 24 } as const;
const KEY_BYTE = R.KEY * 4;
const VALUE_BYTE = R.VALUE * 4;
export const STATE_FREE = 0;
export const STATE_INTERNAL = 1;
export const STATE_EXTERNAL = 2;
/** Share of records preloaded as internal data; the rest is room for external keys. */
export const INTERNAL_SHARE = 0.9;

/** `internal`: a built-in record, whose value is binary. */
export type KvGet = { found: true; value: Uint8Array; internal: boolean; corrupt: boolean } | { found: false };

export class KvStore {
  private readonly keyScratch = new Uint8Array(KV_MAX_KEY_BYTES);

  private constructor(
    private readonly mem: PhysMem,
    readonly header: number,
    private readonly records: Region,
    private readonly buckets: Region,
    private readonly versions: Region,
    readonly capacity: number,
    private readonly bucketMask: number,
    readonly internalKeys: number,
    private readonly seed: number,
  ) {}

  /** Records a store of `budget` pages can hold (header, records, buckets and versions included). */
  static capacityFor(budget: number): number {
    let pages = Math.max(1, budget - 1);
    while (pages > 1 && 1 + KvStore.footprint(pages * RECORDS_PER_PAGE) > budget) pages--;
    return pages * RECORDS_PER_PAGE;
  }

  private static bucketsFor(capacity: number): number {
    return 2 ** Math.floor(Math.log2(Math.max(1, capacity)));
  }

  private static footprint(capacity: number): number {
    const internal = Math.floor(capacity * INTERNAL_SHARE);
    return (
      Region.footprint(capacity / RECORDS_PER_PAGE) +
      Region.footprint(Math.ceil(KvStore.bucketsFor(capacity) / WORDS_PER_PAGE)) +
      Region.footprint(Math.max(1, Math.ceil(internal / WORDS_PER_PAGE)))
    );
  }

  /** Lays out a store in `budget` pages and preloads its internal records. */
  static async create(os: GuestOs, budget: number): Promise<KvStore> {
    const { mem, allocator } = os;
    const capacity = KvStore.capacityFor(budget);
    if (capacity < RECORDS_PER_PAGE) throw new Error(`kv store needs more than ${budget} pages`);
    const bucketCount = KvStore.bucketsFor(capacity);
    const internalKeys = Math.floor(capacity * INTERNAL_SHARE);
    const header = allocator.alloc();
    if (header < 0) throw new Error('out of memory for the kv header');
    mem.zeroPage(header);
    const pause = (): Promise<void> => os.pausePoint();
    const zero = (pfn: number): void => mem.zeroPage(pfn);
    const records = await Region.create(mem, allocator, capacity / RECORDS_PER_PAGE, zero, pause);
    const buckets = await Region.create(mem, allocator, Math.ceil(bucketCount / WORDS_PER_PAGE), zero, pause);
    const versions = await Region.create(mem, allocator, Math.max(1, Math.ceil(internalKeys / WORDS_PER_PAGE)), zero, pause);
    mem.write32(header, H.RECORDS_ROOT, records.rootPfn);
    mem.write32(header, H.BUCKETS_ROOT, buckets.rootPfn);
    mem.write32(header, H.VERSIONS_ROOT, versions.rootPfn);
    mem.write32(header, H.CAPACITY, capacity);
    mem.write32(header, H.BUCKETS, bucketCount);
    mem.write32(header, H.INTERNAL_KEYS, internalKeys);
    mem.write32(header, H.NEXT_UNUSED, internalKeys);
    mem.write32(header, H.LIVE, internalKeys);
    mem.write32(header, H.MAGIC, MAGIC);
    const store = new KvStore(mem, header, records, buckets, versions, capacity, bucketCount - 1, internalKeys, os.seed);
    for (let i = 0; i < internalKeys; i++) {
      store.initInternal(i);
      if ((i & 1023) === 1023) await os.pausePoint();
    }
    return store;
  }

  static open(os: GuestOs, header: number): KvStore {
    const { mem } = os;
    if (mem.read32(header, H.MAGIC) !== MAGIC) throw new GuestFault(header, 'kv store header has a bad magic');
    const capacity = mem.read32(header, H.CAPACITY);
    const bucketCount = mem.read32(header, H.BUCKETS);
    if (capacity <= 0 || bucketCount <= 0 || (bucketCount & (bucketCount - 1)) !== 0) {
      throw new GuestFault(header, `kv store header is corrupt (capacity ${capacity}, buckets ${bucketCount})`);
    }
    return new KvStore(
      mem,
      header,
      Region.open(mem, mem.read32(header, H.RECORDS_ROOT)),
      Region.open(mem, mem.read32(header, H.BUCKETS_ROOT)),
      Region.open(mem, mem.read32(header, H.VERSIONS_ROOT)),
      capacity,
      bucketCount - 1,
      mem.read32(header, H.INTERNAL_KEYS),
      os.seed,
    );
  }

  // ---- figures ----

  get live(): number {
    return this.mem.read32(this.header, H.LIVE);
  }

  get externalLive(): number {
    return this.mem.read32(this.header, H.EXTERNAL_LIVE);
  }

  counters(): Record<string, number> {
    const { mem, header } = this;
    return {
      keys: this.live,
      external_keys: this.externalLive,
      capacity: this.capacity,
      external_sets: mem.read64(header, H.EXTERNAL_SETS),
      gets: mem.read64(header, H.GETS),
      dels: mem.read64(header, H.DELS),
      evictions: mem.read64(header, H.EVICTIONS),
      internal_writes: mem.read64(header, H.INTERNAL_WRITES),
    };
  }

  // ---- the built-in client's internal records ----

  /**
   * Writes a new version of internal record `index`. Returns 'skipped' when it is no longer
   * internal (taken by a client or evicted), 'stale' when it failed its check before the write (a
   * lost update the write would otherwise hide), else 'ok'.
   */
  updateInternal(index: number): 'ok' | 'skipped' | 'stale' {
    const { mem } = this;
    const pfn = this.records.pfns[index >>> 3];
    const base = (index & 7) * RECORD_WORDS;
    if (mem.read32(pfn, base + R.STATE) !== STATE_INTERNAL || mem.read32(pfn, base + R.INDEX) !== index) return 'skipped';
    const intact = this.verifyRecord(index);
    const vpfn = this.versions.pfns[index >>> 10];
    const version = (mem.read32(vpfn, index & 1023) + 1) | 0;
    mem.write32(vpfn, index & 1023, version);
    this.writeInternalValue(pfn, base, index, version);
    mem.add64(this.header, H.INTERNAL_WRITES, 1);
    return intact ? 'ok' : 'stale';
  }

  /** Checks record id `id`: its checksum, and for an internal record its version against the shadow. */
  verifyRecord(id: number): boolean {
    const { mem } = this;
    const pfn = this.records.pfns[id >>> 3];
    const base = (id & 7) * RECORD_WORDS;
    const state = mem.read32(pfn, base + R.STATE);
    if (state === STATE_FREE) return true;
    if (state !== STATE_INTERNAL && state !== STATE_EXTERNAL) return false;
    if (mem.readU32(pfn, base + R.CHECKSUM) !== this.checksum(pfn, base)) return false;
    if (state === STATE_INTERNAL) {
      const index = mem.read32(pfn, base + R.INDEX);
      if (index !== id || index >= this.internalKeys) return false;
      return mem.read32(this.versions.pfns[index >>> 10], index & 1023) === mem.read32(pfn, base + R.VERSION);
    }
    return true;
  }

  /** Walks every chain: each record must be live, in the right bucket, reached once; the count must match. */
  verifyStructure(): boolean {
    const { mem } = this;
    let reached = 0;
    let external = 0;
    const buckets = this.bucketMask + 1;
    for (let b = 0; b < buckets; b++) {
      let link = mem.read32(this.buckets.pfns[b >>> 10], b & 1023);
      let guard = 0;
      while (link !== 0) {
        const id = link - 1;
        if (id < 0 || id >= this.capacity || ++guard > this.capacity) return false;
        const pfn = this.records.pfns[id >>> 3];
        const base = (id & 7) * RECORD_WORDS;
        const state = mem.read32(pfn, base + R.STATE);
        if (state === STATE_FREE || (mem.readU32(pfn, base + R.HASH) & this.bucketMask) !== b) return false;
        if (state === STATE_EXTERNAL) external++;
        reached++;
        link = mem.read32(pfn, base + R.NEXT);
      }
    }
    return reached === this.live && external === this.externalLive;
  }

  // ---- requests by key ----

  get(key: Uint8Array): KvGet {
    const { mem } = this;
    mem.add64(this.header, H.GETS, 1);
    const id = this.find(key, fnv1a(key, 0, key.length));
    if (id < 0) return { found: false };
    const pfn = this.records.pfns[id >>> 3];
    const base = (id & 7) * RECORD_WORDS;
    const valueLength = mem.readU32(pfn, base + R.LENGTHS) >>> 16;
    const value = new Uint8Array(Math.min(valueLength, KV_MAX_VALUE_BYTES));
    mem.readBytes(pfn, base * 4 + VALUE_BYTE, value, 0, value.length);
    return { found: true, value, internal: mem.read32(pfn, base + R.STATE) === STATE_INTERNAL, corrupt: !this.verifyRecord(id) };
  }

  /** Stores key = value as an external record; false when the store is full of external records. */
  set(key: Uint8Array, value: Uint8Array): boolean {
    const { mem, header } = this;
    const hash = fnv1a(key, 0, key.length);
    let id = this.find(key, hash);
    let isNew = false;
    if (id < 0) {
      id = this.allocRecord();
      if (id < 0) return false;
      isNew = true;
    }
    const pfn = this.records.pfns[id >>> 3];
    const base = (id & 7) * RECORD_WORDS;
    const wasState = isNew ? STATE_FREE : mem.read32(pfn, base + R.STATE);
    mem.write32(pfn, base + R.STATE, STATE_EXTERNAL);
    mem.write32(pfn, base + R.HASH, hash);
    mem.write32(pfn, base + R.LENGTHS, key.length | (value.length << 16));
    mem.write32(pfn, base + R.VERSION, isNew ? 1 : (mem.read32(pfn, base + R.VERSION) + 1) | 0);
    mem.write32(pfn, base + R.INDEX, -1);
    mem.writeBytes(pfn, base * 4 + KEY_BYTE, key, 0, key.length);
    mem.writeBytes(pfn, base * 4 + VALUE_BYTE, value, 0, value.length);
    mem.write32(pfn, base + R.CHECKSUM, this.checksum(pfn, base));
    if (isNew) {
      this.link(id, hash);
      mem.add32(header, H.LIVE, 1);
    }
    if (wasState !== STATE_EXTERNAL) mem.add32(header, H.EXTERNAL_LIVE, 1);
    mem.add64(header, H.EXTERNAL_SETS, 1);
    return true;
  }

  del(key: Uint8Array): boolean {
    const { mem, header } = this;
    mem.add64(header, H.DELS, 1);
    const hash = fnv1a(key, 0, key.length);
    const id = this.find(key, hash);
    if (id < 0) return false;
    const pfn = this.records.pfns[id >>> 3];
    const base = (id & 7) * RECORD_WORDS;
    if (mem.read32(pfn, base + R.STATE) === STATE_EXTERNAL) mem.add32(header, H.EXTERNAL_LIVE, -1);
    this.unlink(id, hash);
    mem.write32(pfn, base + R.STATE, STATE_FREE);
    mem.write32(pfn, base + R.NEXT, mem.read32(header, H.FREE_HEAD));
    mem.write32(header, H.FREE_HEAD, id + 1);
    mem.add32(header, H.LIVE, -1);
    return true;
  }

  // ---- internals ----

  private initInternal(index: number): void {
    const { mem } = this;
    const pfn = this.records.pfns[index >>> 3];
    const base = (index & 7) * RECORD_WORDS;
    // Key "i<index>" in ASCII, written digit by digit (no string per record).
    let digits = 1;
    for (let v = index; v >= 10; v = Math.floor(v / 10)) digits++;
    const key = this.keyScratch;
    key[0] = 0x69;
    for (let d = digits, v = index; d >= 1; d--, v = Math.floor(v / 10)) key[d] = 0x30 + (v % 10);
    const keyLength = digits + 1;
    const hash = fnv1a(key, 0, keyLength);
    mem.write32(pfn, base + R.STATE, STATE_INTERNAL);
    mem.write32(pfn, base + R.HASH, hash);
    mem.write32(pfn, base + R.LENGTHS, keyLength | (KV_MAX_VALUE_BYTES << 16));
    mem.write32(pfn, base + R.INDEX, index);
    mem.writeBytes(pfn, base * 4 + KEY_BYTE, key, 0, keyLength);
    mem.write32(this.versions.pfns[index >>> 10], index & 1023, 1);
    this.writeInternalValue(pfn, base, index, 1);
    this.link(index, hash);
  }

  private writeInternalValue(pfn: number, base: number, index: number, version: number): void {
    const { mem } = this;
    mem.write32(pfn, base + R.VERSION, version);
    mem.fillWords(pfn, base + R.VALUE, base + RECORD_WORDS, hash3(index, version, this.seed));
    mem.write32(pfn, base + R.CHECKSUM, this.checksum(pfn, base));
  }

  private checksum(pfn: number, base: number): number {
    const { mem } = this;
    let h = mem.checksumWords(pfn, base + R.KEY, base + RECORD_WORDS);
    h = mix32(h, mem.read32(pfn, base + R.HASH));
    h = mix32(h, mem.read32(pfn, base + R.LENGTHS));
    h = mix32(h, mem.read32(pfn, base + R.VERSION));
    return mix32(h, mem.read32(pfn, base + R.INDEX));
  }

  /** Record id holding key, or -1. */
  private find(key: Uint8Array, hash: number): number {
    const { mem } = this;
    const b = hash & this.bucketMask;
    let link = mem.read32(this.buckets.pfns[b >>> 10], b & 1023);
    let guard = 0;
    while (link !== 0) {
      const id = link - 1;
      if (id < 0 || id >= this.capacity || ++guard > this.capacity) throw new GuestFault(this.header, `kv chain of bucket ${b} is corrupt`);
      const pfn = this.records.pfns[id >>> 3];
      const base = (id & 7) * RECORD_WORDS;
      if (mem.readU32(pfn, base + R.HASH) === hash && (mem.read32(pfn, base + R.LENGTHS) & 0xffff) === key.length) {
        mem.readBytes(pfn, base * 4 + KEY_BYTE, this.keyScratch, 0, key.length);
        let same = true;
        for (let i = 0; i < key.length; i++) {
          if (this.keyScratch[i] !== key[i]) {
            same = false;
            break;
          }
        }
        if (same) return id;
      }
      link = mem.read32(pfn, base + R.NEXT);
    }
    return -1;
  }

  private link(id: number, hash: number): void {
    const { mem } = this;
    const b = hash & this.bucketMask;
    const bpfn = this.buckets.pfns[b >>> 10];
    mem.write32(this.records.pfns[id >>> 3], (id & 7) * RECORD_WORDS + R.NEXT, mem.read32(bpfn, b & 1023));
    mem.write32(bpfn, b & 1023, id + 1);
  }

  private unlink(id: number, hash: number): void {
    const { mem } = this;
    const b = hash & this.bucketMask;
    const bpfn = this.buckets.pfns[b >>> 10];
    const next = mem.read32(this.records.pfns[id >>> 3], (id & 7) * RECORD_WORDS + R.NEXT);
    let link = mem.read32(bpfn, b & 1023);
    if (link === id + 1) {
      mem.write32(bpfn, b & 1023, next);
      return;
    }
    let guard = 0;
    while (link !== 0) {
      const prev = link - 1;
      if (++guard > this.capacity) break;
      const ppfn = this.records.pfns[prev >>> 3];
      const pnext = (prev & 7) * RECORD_WORDS + R.NEXT;
      link = mem.read32(ppfn, pnext);
      if (link === id + 1) {
        mem.write32(ppfn, pnext, next);
        return;
      }
    }
    throw new GuestFault(this.header, `kv record ${id} is missing from its bucket chain`);
  }

  /** A record id for a new key: the free list, then never-used records, then an evicted internal record. */
  private allocRecord(): number {
    const { mem, header } = this;
    const free = mem.read32(header, H.FREE_HEAD);
    if (free !== 0) {
      const id = free - 1;
      mem.write32(header, H.FREE_HEAD, mem.read32(this.records.pfns[id >>> 3], (id & 7) * RECORD_WORDS + R.NEXT));
      return id;
    }
    const unused = mem.read32(header, H.NEXT_UNUSED);
    if (unused < this.capacity) {
      mem.write32(header, H.NEXT_UNUSED, unused + 1);
      return unused;
    }
    let cursor = mem.read32(header, H.EVICT_CURSOR);
    for (let scanned = 0; scanned < this.internalKeys; scanned++) {
      const id = cursor;
      cursor = cursor + 1 >= this.internalKeys ? 0 : cursor + 1;
      const pfn = this.records.pfns[id >>> 3];
      const base = (id & 7) * RECORD_WORDS;
      if (mem.read32(pfn, base + R.STATE) !== STATE_INTERNAL) continue;
      this.unlink(id, mem.readU32(pfn, base + R.HASH));
      mem.write32(pfn, base + R.STATE, STATE_FREE);
      mem.add32(header, H.LIVE, -1);
      mem.add64(header, H.EVICTIONS, 1);
      mem.write32(header, H.EVICT_CURSOR, cursor);
      return id;
    }
    return -1;
  }
}
