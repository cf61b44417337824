// Xen's log-dirty bitmap and page types into the driver interface's pfn bitmaps.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bitmapPfns } from '@ferry/hypervisor';
import { markPopulated, pageHasData, PageType, pfnBitmapFromXen } from '@ferry/xen-driver';

/** Xen's bitmap: unsigned longs (8 bytes, little-endian on x86), bit p = pfn p. */
function xenBitmap(pfns: number[], words: number): Uint8Array {
  const longs = new BigUint64Array(words);
  for (const pfn of pfns) longs[pfn >> 6] |= 1n << BigInt(pfn & 63);
  return new Uint8Array(longs.buffer);
}

describe('pfnBitmapFromXen', () => {
  it('keeps the pfns of a little-endian word bitmap and cuts it to ceil(pages / 8) bytes', () => {
    const pfns = [0, 1, 7, 8, 63, 64, 65, 100];
    const out = pfnBitmapFromXen(xenBitmap(pfns, 2), 101);
    assert.equal(out.length, 13);
    assert.deepEqual(bitmapPfns(out), pfns);
  });

  it('clears the bits past the p2m size that share the last byte', () => {
    // Xen copies whole bytes: bits 101..103 may be set in the last byte of a 101-page bitmap.
    const out = pfnBitmapFromXen(xenBitmap([99, 100, 101, 102, 103, 127], 2), 101);
    assert.deepEqual(bitmapPfns(out), [99, 100]);
  });

  it('handles a p2m that ends on a byte boundary and an empty one', () => {
    assert.deepEqual(bitmapPfns(pfnBitmapFromXen(xenBitmap([15, 16], 1), 16)), [15]);
    assert.equal(pfnBitmapFromXen(new Uint8Array(8), 0).length, 0);
  });

  it('pads a short bitmap with zeros rather than reading past it', () => {
    const out = pfnBitmapFromXen(Uint8Array.of(0xff), 20);
    assert.equal(out.length, 3);
    assert.deepEqual(bitmapPfns(out), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('returns a copy', () => {
    const xen = xenBitmap([3], 1);
    const out = pfnBitmapFromXen(xen, 64);
    xen[0] = 0;
    assert.deepEqual(bitmapPfns(out), [3]);
  });
});

describe('page types', () => {
  it('only XTAB, XALLOC and BROKEN pages carry no data (Xen saver\'s page_type_has_stream_data)', () => {
    for (const t of [PageType.NOTAB, PageType.L1TAB, PageType.L2TAB, PageType.L3TAB, PageType.L4TAB, 0x9, 0xc]) {
      assert.equal(pageHasData(t), true, `type ${t}`);
    }
    for (const t of [PageType.XTAB, PageType.XALLOC, PageType.BROKEN]) assert.equal(pageHasData(t), false, `type ${t}`);
  });

  it('markPopulated sets the bits of data pages at their pfns, starting at the chunk\'s first pfn', () => {
    const bitmap = new Uint8Array(4);
    const types = Uint8Array.of(PageType.NOTAB, PageType.XTAB, PageType.L1TAB, PageType.XALLOC, PageType.NOTAB);
    markPopulated(bitmap, 10, types);
    assert.deepEqual(bitmapPfns(bitmap), [10, 12, 14]);
    markPopulated(bitmap, 20, Uint8Array.of(PageType.BROKEN, PageType.NOTAB));
    assert.deepEqual(bitmapPfns(bitmap), [10, 12, 14, 21]);
  });
});
