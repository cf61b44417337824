// Xen's page bitmaps and page types into the driver interface's pfn bitmaps (one bit per pfn, LSB
// first within each byte, ceil(pages / 8) bytes). Xen's log-dirty bitmap is an array of unsigned
// longs; on little-endian x86 that is already this byte order, but it is rounded up to whole
// words, and the bits past the p2m size must not leak into a caller's send set.

import { PageType } from './xen-constants';

/** A copy of Xen's bitmap cut to ceil(pages / 8) bytes, with the bits at pfn ≥ pages cleared. */
export function pfnBitmapFromXen(xenBitmap: Uint8Array, pages: number): Uint8Array {
  const bytes = Math.ceil(pages / 8);
  const out = new Uint8Array(bytes);
  out.set(xenBitmap.subarray(0, Math.min(bytes, xenBitmap.length)));
  const tailBits = pages & 7;
  if (tailBits !== 0 && bytes > 0) out[bytes - 1] &= (1 << tailBits) - 1;
  return out;
}

/**
 * Whether a page of this type carries data (page_type_has_stream_data in Xen's saver): XTAB
 * (not populated: a hole or a ballooned-out page), XALLOC (allocate only) and BROKEN do not.
 */
export function pageHasData(type: number): boolean {
  return type !== PageType.XTAB && type !== PageType.XALLOC && type !== PageType.BROKEN;
}

/** Sets the bit of every pfn whose type carries data: types[i] is the type of pfn firstPfn + i. */
export function markPopulated(bitmap: Uint8Array, firstPfn: number, types: Uint8Array): void {
  for (let i = 0; i < types.length; i++) {
    if (!pageHasData(types[i])) continue;
    const pfn = firstPfn + i;
    bitmap[pfn >>> 3] |= 1 << (pfn & 7);
  }
}
