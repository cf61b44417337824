// Small integer hashes for self-checking data (stamps, record checksums). Not cryptographic: they
// only need to make a stale, torn or zeroed record disagree with its stamp.

/** Mixes 32-bit words into a hash (murmur3 finaliser over a running combination). */
export function mix32(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  return (h ^ (h >>> 13)) >>> 0;
}

export function hash3(a: number, b: number, c: number): number {
  return mix32(mix32(mix32(0x2545f491, a), b), c);
}

/** FNV-1a over bytes [start, start+length) of a buffer. */
export function fnv1a(bytes: Uint8Array, start: number, length: number, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[start + i], 0x01000193);
  return h >>> 0;
}
