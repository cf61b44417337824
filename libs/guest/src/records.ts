// Fixed-size self-checking records inside guest pages, for workloads that rewrite parts of pages
// (web sessions, log entries, database rows). A record of n words: word 0 its id, word 1 its
// version, word 2 its checksum, words 3..n-1 a pseudo-random payload drawn from (id, version,
// seed). A stale record still checks out by itself: callers that must catch lost updates compare
// the version with a shadow copy kept elsewhere.

import { hash3, mix32 } from './checksum';
import type { PhysMem } from './phys-mem';

export const REC_ID = 0;
export const REC_VERSION = 1;
export const REC_CHECKSUM = 2;
export const REC_PAYLOAD = 3;

/** Writes version `version` of record `id` at words [base, base+words) of page pfn. */
export function writeRecord(mem: PhysMem, pfn: number, base: number, words: number, id: number, version: number, seed: number): void {
  const sum = mem.fillWords(pfn, base + REC_PAYLOAD, base + words, hash3(id, version, seed));
  mem.write32(pfn, base + REC_ID, id);
  mem.write32(pfn, base + REC_VERSION, version);
  mem.write32(pfn, base + REC_CHECKSUM, mix32(sum, hash3(id, version, seed)));
}

/** The version of a record whose id and checksum are right, or -1. */
export function checkRecord(mem: PhysMem, pfn: number, base: number, words: number, id: number, seed: number): number {
  if (mem.read32(pfn, base + REC_ID) !== id) return -1;
  const version = mem.read32(pfn, base + REC_VERSION);
  const sum = mem.checksumWords(pfn, base + REC_PAYLOAD, base + words);
  return mem.readU32(pfn, base + REC_CHECKSUM) === mix32(sum, hash3(id, version, seed)) ? version : -1;
}
