// Checksums of batch payloads as they appear on the wire (ChecksumAlgorithm): CRC-32 as zlib
// computes it, 4 bytes big-endian (the default: native and fast), or SHA-256.

import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { ChecksumAlgorithm } from '@ferry/proto';

const EMPTY = new Uint8Array(0);

export function computeChecksum(algorithm: ChecksumAlgorithm, payload: Uint8Array): Uint8Array {
  switch (algorithm) {
    case ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32: {
      const out = Buffer.allocUnsafe(4);
      out.writeUInt32BE(crc32(payload) >>> 0, 0);
      return out;
    }
    case ChecksumAlgorithm.CHECKSUM_ALGORITHM_SHA256:
      return createHash('sha256').update(payload).digest();
    default:
      return EMPTY;
  }
}

/** Bytes of the checksum value an algorithm produces; undefined for an unknown algorithm. */
export function checksumLength(algorithm: number): number | undefined {
  switch (algorithm) {
    case ChecksumAlgorithm.CHECKSUM_ALGORITHM_UNSPECIFIED:
      return 0;
    case ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32:
      return 4;
    case ChecksumAlgorithm.CHECKSUM_ALGORITHM_SHA256:
      return 32;
    default:
      return undefined;
  }
}

export function checksumMatches(algorithm: ChecksumAlgorithm, payload: Uint8Array, expected: Uint8Array): boolean {
  if (algorithm === ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32) {
    if (expected.length !== 4) return false;
    const value = ((expected[0] << 24) | (expected[1] << 16) | (expected[2] << 8) | expected[3]) >>> 0;
    return (crc32(payload) >>> 0) === value;
  }
  const actual = computeChecksum(algorithm, payload);
  return Buffer.compare(actual, expected) === 0;
}
