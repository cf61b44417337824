// Reading one batch of a send set from the source domain and encoding it for the wire: each page is
// ABSENT (not populated: Xen's XTAB, a header entry only, never page data), ZERO (all zeroes: a
// header entry only) or RAW (its 4096 bytes in the payload). The payload is copied out of the
// mapping (a real foreign mapping keeps changing under a running guest, and the checksum must
// describe exactly what is sent), optionally zlib-compressed, and checksummed.

import { promisify } from 'node:util';
import { deflate } from 'node:zlib';
import { HypervisorError, MAX_BATCH_PAGES, PAGE_SIZE, type HypervisorDriver } from '@ferry/hypervisor';
import { ChecksumAlgorithm, PageEncoding, PayloadCompression } from '@ferry/proto';
import { encodeBatchHeaderFrame, type BatchHeader } from './wire/batch-header';
import { computeChecksum } from './wire/checksum';

const deflateAsync = promisify(deflate);
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
const ENOENT = -2;
const BATCH_BYTES = MAX_BATCH_PAGES * PAGE_SIZE;

export interface EncodedBatch {
  header: BatchHeader;
  /** The header as a length-prefixed frame. */
  frame: Buffer;
  /** The payload as it goes on the wire (after compression). */
  payload: Buffer;
  /** Gives the payload buffer back for reuse; call once it has been written out. */
  release(): void;
  rawPages: number;
  zeroPages: number;
  absentPages: number;
  /** Page contents put into the payload before compression. */
  dataBytes: number;
}

export interface BatchEncoderOptions {
  compression: PayloadCompression;
  checksum: ChecksumAlgorithm;
  /** Send all-zero pages in full (as Xen's stream does) instead of as ZERO entries. */
  sendZeroPages?: boolean;
}

/** Reusable 4 MiB payload buffers: a few batches are in flight at a time, never one per page. */
class PayloadPool {
  private readonly free: Buffer[] = [];

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  release(buffer: Buffer): void {
    if (this.free.length < 4) this.free.push(buffer);
  }
}

export class BatchEncoder {
  private readonly pool = new PayloadPool();

  constructor(
    private readonly driver: HypervisorDriver,
    private readonly domid: number,
    private readonly migrationId: string,
    private readonly opts: BatchEncoderOptions,
  ) {}

  /** `traceparent` goes on a round's first batch (see PageBatchHeader.traceparent). */
  async encode(round: number, sequence: number, pfns: number[], flags: number, traceparent = ''): Promise<EncodedBatch> {
    const n = pfns.length;
    const buffer = this.pool.acquire();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.pool.release(buffer);
    };
    try {
      let encodings: Uint8Array | null = null;
      let raw = 0;
      let zero = 0;
      let absent = 0;
      if (n > 0) {
        const pages = await this.driver.mapForeignPages(this.domid, pfns);
        try {
          const data = pages.data;
          for (let i = 0; i < n; i++) {
            const offset = i * PAGE_SIZE;
            let encoding: PageEncoding;
            const error = pages.errors[i];
            if (error !== 0) {
              if (error !== ENOENT) {
                throw new HypervisorError('EIO', `mapping pfn ${pfns[i]} of domain ${this.domid} failed with errno ${-error}`);
              }
              encoding = PageEncoding.PAGE_ENCODING_ABSENT;
              absent++;
            } else if (!this.opts.sendZeroPages && data.compare(ZERO_PAGE, 0, PAGE_SIZE, offset, offset + PAGE_SIZE) === 0) {
              encoding = PageEncoding.PAGE_ENCODING_ZERO;
              zero++;
            } else {
              data.copy(buffer, raw * PAGE_SIZE, offset, offset + PAGE_SIZE);
              raw++;
              encoding = PageEncoding.PAGE_ENCODING_RAW;
            }
            if (encoding !== PageEncoding.PAGE_ENCODING_RAW && encodings === null) {
              // The first non-RAW page: every page so far was RAW.
              encodings = new Uint8Array(n).fill(PageEncoding.PAGE_ENCODING_RAW);
            }
            if (encodings !== null) encodings[i] = encoding;
          }
        } finally {
          pages.unmap();
        }
      }
      const dataBytes = raw * PAGE_SIZE;
      let payload = buffer.subarray(0, dataBytes);
      let compression = PayloadCompression.PAYLOAD_COMPRESSION_NONE;
      if (this.opts.compression === PayloadCompression.PAYLOAD_COMPRESSION_ZLIB && dataBytes > 0) {
        // Runs on libuv's thread pool: reading the next batch goes on meanwhile.
        payload = await deflateAsync(payload, { level: 1 });
        compression = PayloadCompression.PAYLOAD_COMPRESSION_ZLIB;
        release();
      }
      const header: BatchHeader = {
        migrationId: this.migrationId,
        round,
        sequence,
        pfnCount: n,
        flags,
        pfns,
        encodings,
        compression,
        payloadLength: payload.length,
        checksumAlgorithm: this.opts.checksum,
        checksum: computeChecksum(this.opts.checksum, payload),
        traceparent,
      };
      return {
        header,
        frame: encodeBatchHeaderFrame(header),
        payload,
        release,
        rawPages: raw,
        zeroPages: zero,
        absentPages: absent,
        dataBytes,
      };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** A batch whose payload is the domain's vCPU and device state (PAGE_BATCH_FLAG_VCPU_STATE). */
  encodeState(sequence: number, flags: number, state: Uint8Array, traceparent = ''): { frame: Buffer; payload: Buffer; header: BatchHeader } {
    const payload = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    const header: BatchHeader = {
      migrationId: this.migrationId,
      round: 0,
      sequence,
      pfnCount: 0,
      flags,
      pfns: [],
      encodings: null,
      compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
      payloadLength: payload.length,
      checksumAlgorithm: this.opts.checksum,
      checksum: computeChecksum(this.opts.checksum, payload),
      traceparent,
    };
    return { header, frame: encodeBatchHeaderFrame(header), payload };
  }
}
