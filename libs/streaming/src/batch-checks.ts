// What a receiver verifies about a batch before it writes a single page of it. The header checks
// run before the payload is read (a header that lies about its payload length cannot be trusted to
// find the next frame); the checksum runs over the payload as it came off the wire.

import { MAX_BATCH_PAGES, PAGE_SIZE } from '@ferry/hypervisor';
import { BatchRejectReason, ChecksumAlgorithm, PageBatchFlag, PageEncoding, PayloadCompression } from '@ferry/proto';
import type { BatchHeader } from './wire/batch-header';
import { checksumLength, checksumMatches } from './wire/checksum';
import { MAX_PAYLOAD_BYTES } from './wire/frames';

export interface BatchProblem {
  reason: BatchRejectReason;
  message: string;
}

const KNOWN_FLAGS =
  PageBatchFlag.PAGE_BATCH_FLAG_END_OF_ROUND | PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM;

const malformed = (message: string): BatchProblem => ({ reason: BatchRejectReason.BATCH_REJECT_REASON_MALFORMED, message });

export interface HeaderContext {
  migrationId: string;
  expectedSequence: number;
  maxPages: number;
}

/**
 * Checks a batch header against the session; null when it is sound. `seen` is scratch of at least
 * ceil(maxPages / 8) zero bytes, used to find repeated pfns and left zeroed again.
 */
export function checkBatchHeader(h: BatchHeader, ctx: HeaderContext, seen: Uint8Array): BatchProblem | null {
  if (h.migrationId !== ctx.migrationId) return malformed(`the batch belongs to migration "${h.migrationId}", not ${ctx.migrationId}`);
  if (h.sequence !== ctx.expectedSequence) return malformed(`sequence ${h.sequence} where ${ctx.expectedSequence} was due`);
  if ((h.flags & ~KNOWN_FLAGS) !== 0) return malformed(`unknown flags 0x${h.flags.toString(16)}`);
  if (h.pfnCount > MAX_BATCH_PAGES) return malformed(`pfn_count ${h.pfnCount} exceeds ${MAX_BATCH_PAGES}`);
  if (h.pfns.length !== h.pfnCount) return malformed(`pfn_count says ${h.pfnCount} pages but ${h.pfns.length} pfns are listed`);
  if (h.encodings !== null && h.encodings.length !== h.pfnCount) {
    return malformed(`${h.encodings.length} encodings for ${h.pfnCount} pfns`);
  }
  if (h.payloadLength > MAX_PAYLOAD_BYTES) return malformed(`payload_length ${h.payloadLength} exceeds ${MAX_PAYLOAD_BYTES}`);
  const compression = h.compression;
  if (
    compression !== PayloadCompression.PAYLOAD_COMPRESSION_UNSPECIFIED &&
    compression !== PayloadCompression.PAYLOAD_COMPRESSION_NONE &&
    compression !== PayloadCompression.PAYLOAD_COMPRESSION_ZLIB
  ) {
    return malformed(`unknown compression ${compression}`);
  }
  const expectedChecksumLength = checksumLength(h.checksumAlgorithm);
  if (expectedChecksumLength === undefined) return malformed(`unknown checksum algorithm ${h.checksumAlgorithm}`);
  if (h.checksum.length !== expectedChecksumLength) {
    return malformed(`a ${ChecksumAlgorithm[h.checksumAlgorithm]} checksum of ${h.checksum.length} bytes`);
  }
  if ((h.flags & PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE) !== 0) {
    if (h.pfnCount !== 0) return malformed(`a VCPU_STATE batch lists ${h.pfnCount} pfns`);
    if (compression === PayloadCompression.PAYLOAD_COMPRESSION_ZLIB) return malformed('a VCPU_STATE payload must not be compressed');
    return null;
  }

  let raw = 0;
  for (let i = 0; i < h.pfnCount; i++) {
    const encoding = h.encodings === null ? PageEncoding.PAGE_ENCODING_RAW : h.encodings[i];
    if (encoding === PageEncoding.PAGE_ENCODING_RAW || encoding === PageEncoding.PAGE_ENCODING_UNSPECIFIED) raw++;
    else if (encoding !== PageEncoding.PAGE_ENCODING_ZERO && encoding !== PageEncoding.PAGE_ENCODING_ABSENT) {
      return malformed(`pfn ${h.pfns[i]} has unknown encoding ${encoding}`);
    }
  }
  const uncompressed = compression === PayloadCompression.PAYLOAD_COMPRESSION_ZLIB ? raw * PAGE_SIZE : h.payloadLength;
  if (uncompressed !== raw * PAGE_SIZE) {
    return malformed(`payload_length ${h.payloadLength} for ${raw} raw pages (${raw * PAGE_SIZE} bytes expected)`);
  }
  if (compression === PayloadCompression.PAYLOAD_COMPRESSION_ZLIB && raw === 0 && h.payloadLength !== 0) {
    return malformed(`a compressed payload of ${h.payloadLength} bytes for no raw page`);
  }
  return checkPfns(h, ctx.maxPages, seen);
}

function checkPfns(h: BatchHeader, maxPages: number, seen: Uint8Array): BatchProblem | null {
  for (let i = 0; i < h.pfnCount; i++) {
    const pfn = h.pfns[i];
    if (pfn >= maxPages) {
      return {
        reason: BatchRejectReason.BATCH_REJECT_REASON_PFN_OUT_OF_RANGE,
        message: `pfn ${pfn} is outside the receiving domain's ${maxPages} pages`,
      };
    }
  }
  let problem: BatchProblem | null = null;
  let i = 0;
  for (; i < h.pfnCount; i++) {
    const pfn = h.pfns[i];
    const bit = 1 << (pfn & 7);
    if ((seen[pfn >>> 3] & bit) !== 0) {
      problem = malformed(`pfn ${pfn} appears more than once`);
      break;
    }
    seen[pfn >>> 3] |= bit;
  }
  for (let j = 0; j < i; j++) seen[h.pfns[j] >>> 3] = 0;
  return problem;
}

export function checkPayload(h: BatchHeader, payload: Uint8Array): BatchProblem | null {
  if (h.checksumAlgorithm === ChecksumAlgorithm.CHECKSUM_ALGORITHM_UNSPECIFIED) return null;
  if (checksumMatches(h.checksumAlgorithm, payload, h.checksum)) return null;
  return { reason: BatchRejectReason.BATCH_REJECT_REASON_CHECKSUM_MISMATCH, message: 'checksum mismatch' };
}

/** Pages of a (checked) batch whose bytes are in the payload. */
export function rawPageCount(h: BatchHeader): number {
  if (h.encodings === null) return h.pfnCount;
  let raw = 0;
  for (let i = 0; i < h.pfnCount; i++) {
    const e = h.encodings[i];
    if (e === PageEncoding.PAGE_ENCODING_RAW || e === PageEncoding.PAGE_ENCODING_UNSPECIFIED) raw++;
  }
  return raw;
}
