// The order a seed's variants run in. A group of migrations runs one variant after another on the
// same lab, and the lab drifts within a group (heaps grow, the previous guest's memory is still
// being given back, caches warm up), so a variant that always ran in the same position would carry
// that position's cost in every seed. Rotating by one per seed puts each variant in every position
// once per len(variants) seeds; ratios stay paired by seed.

/** The variants of the seed at `seedIndex` (0-based), rotated left by that many places. */
export function runOrder<T>(variants: readonly T[], seedIndex: number): T[] {
  if (variants.length === 0) return [];
  const k = ((seedIndex % variants.length) + variants.length) % variants.length;
  return [...variants.slice(k), ...variants.slice(0, k)];
}
