// Writing a verified batch into the receiving domain: RAW pages from the payload, ZERO pages as
// zeroes (they must exist on the target too: the source has them populated), ABSENT pages left
// alone (they are not populated on the source; the hypervisor interface has no way to unpopulate,
// as Xen's restore never frees memory either). One writePages call per batch.

import { promisify } from 'node:util';
import { inflate } from 'node:zlib';
import { MAX_BATCH_PAGES, PAGE_SIZE, type HypervisorDriver } from '@ferry/hypervisor';
import { PageEncoding, PayloadCompression } from '@ferry/proto';
import type { BatchHeader } from './wire/batch-header';

const inflateAsync = promisify(inflate);

export interface WrittenBatch {
  written: number;
  zero: number;
  absent: number;
}

export class PayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadError';
  }
}

export class PageWriter {
  /** Pages laid out for writePages when the payload alone is not (zero pages, absent pages). */
  private staging: Buffer | null = null;

  constructor(
    private readonly driver: HypervisorDriver,
    private readonly domid: number,
  ) {}

  /** The raw page bytes of a batch: the payload itself, or inflated. Throws PayloadError. */
  async rawBytes(h: BatchHeader, payload: Buffer, rawPages: number): Promise<Buffer> {
    if (h.compression !== PayloadCompression.PAYLOAD_COMPRESSION_ZLIB || rawPages === 0) return payload;
    const expected = rawPages * PAGE_SIZE;
    let inflated: Buffer;
    try {
      inflated = await inflateAsync(payload, { maxOutputLength: expected });
    } catch (err) {
      throw new PayloadError(`the zlib payload does not inflate to ${expected} bytes: ${(err as Error).message}`);
    }
    if (inflated.length !== expected) throw new PayloadError(`the zlib payload inflated to ${inflated.length} bytes, not ${expected}`);
    return inflated;
  }

  async write(h: BatchHeader, raw: Buffer): Promise<WrittenBatch> {
    const n = h.pfnCount;
    if (n === 0) return { written: 0, zero: 0, absent: 0 };
    if (h.encodings === null) {
      await this.driver.writePages(this.domid, h.pfns, raw.subarray(0, n * PAGE_SIZE));
      return { written: n, zero: 0, absent: 0 };
    }
    const staging = (this.staging ??= Buffer.allocUnsafeSlow(MAX_BATCH_PAGES * PAGE_SIZE));
    const pfns: number[] = [];
    let zero = 0;
    let absent = 0;
    let rawIndex = 0;
    for (let i = 0; i < n; i++) {
      const encoding = h.encodings[i];
      if (encoding === PageEncoding.PAGE_ENCODING_ABSENT) {
        absent++;
        continue;
      }
      const at = pfns.length * PAGE_SIZE;
      if (encoding === PageEncoding.PAGE_ENCODING_ZERO) {
        staging.fill(0, at, at + PAGE_SIZE);
        zero++;
      } else {
        raw.copy(staging, at, rawIndex * PAGE_SIZE, (rawIndex + 1) * PAGE_SIZE);
        rawIndex++;
      }
      pfns.push(h.pfns[i]);
    }
    if (pfns.length > 0) await this.driver.writePages(this.domid, pfns, staging.subarray(0, pfns.length * PAGE_SIZE));
    return { written: pfns.length, zero, absent };
  }
}
