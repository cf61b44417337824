// The memory a stock Xen receiver ends up with after applying a stream's PAGE_DATA records in
// order (xc_domain_restore): a page's last copy wins; an XTAB entry never populates a pfn and
// never frees one either (the restore code has no decrease_reservation), so a pfn sent with data
// and later listed as XTAB keeps its data.

import { createHash } from 'node:crypto';
import { PAGE_SIZE, PageType } from './format';
import type { DecodedPage } from './page-data';

export class MemoryImage {
  private readonly pages = new Map<number, Buffer>();
  private readonly xtab = new Set<number>();
  private copies = 0;

  /** Applies one PAGE_DATA record's entries. Data is copied (the record's buffer may be reused). */
  apply(entries: readonly DecodedPage[]): void {
    for (const entry of entries) {
      if (entry.data) {
        const own = this.pages.get(entry.pfn) ?? Buffer.allocUnsafe(PAGE_SIZE);
        entry.data.copy(own);
        this.pages.set(entry.pfn, own);
        this.copies++;
      } else if (entry.type === PageType.XTAB) {
        this.xtab.add(entry.pfn);
      }
    }
  }

  /** Pfns populated with data. */
  get populatedCount(): number {
    return this.pages.size;
  }

  /** Data entries applied, repeats included (populatedCount of them were the last copy). */
  get dataEntries(): number {
    return this.copies;
  }

  /** Pfns listed as XTAB and never given data: unpopulated on the receiver. */
  get unpopulatedCount(): number {
    let n = 0;
    for (const pfn of this.xtab) if (!this.pages.has(pfn)) n++;
    return n;
  }

  /** Pfns listed as XTAB in one record and given data in another: a receiver keeps them populated. */
  get populatedListedAsXtab(): number {
    let n = 0;
    for (const pfn of this.xtab) if (this.pages.has(pfn)) n++;
    return n;
  }

  /** The page's final contents, or undefined when the stream gave it no data. */
  page(pfn: number): Buffer | undefined {
    return this.pages.get(pfn);
  }

  /** Populated pfns in ascending order. */
  populatedPfns(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b);
  }

  /**
   * SHA-256 over every populated page in ascending pfn order, of the pfn as 8 bytes
   * little-endian and the page's 4096 bytes: PageStreamerService.MemoryDigest's definition, so
   * it equals the digest of the domain the stream was read from (while that stays paused).
   */
  digest(): Buffer {
    const hash = createHash('sha256');
    const pfnBytes = Buffer.alloc(8);
    for (const pfn of this.populatedPfns()) {
      pfnBytes.writeBigUInt64LE(BigInt(pfn));
      hash.update(pfnBytes);
      hash.update(this.pages.get(pfn)!);
    }
    return hash.digest();
  }
}
