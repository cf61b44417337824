// The rounds of a live migration, read from the stream itself: libxc sends each pass over guest
// memory (round 0: every pfn; later rounds: the dirty ones; the last: stop-and-copy) in ascending
// pfn order, so a pass ends where the pfns of PAGE_DATA start again from lower down. xl does not
// print libxc's per-round progress when its output is not a terminal, so this is where rounds
// come from for the xl half.

import { createReadStream } from 'node:fs';
import { LibxcRecordType, readXenStream } from '@ferry/xen-stream';

export interface StreamPasses {
  /** Pages (pfn entries) in each pass, in order. */
  pagesPerPass: number[];
}

export async function streamPasses(file: string): Promise<StreamPasses> {
  const pagesPerPass: number[] = [];
  let last = -1;
  try {
    for await (const item of readXenStream(createReadStream(file))) {
      if (item.kind !== 'libxc-record' || item.type !== LibxcRecordType.PAGE_DATA || !item.pages) continue;
      for (const page of item.pages) {
        if (page.pfn <= last || pagesPerPass.length === 0) pagesPerPass.push(0);
        pagesPerPass[pagesPerPass.length - 1]++;
        last = page.pfn;
      }
    }
  } catch {
    // Whatever follows the libxl END (xl's own handshake messages) is not stream: the passes are counted.
  }
  return { pagesPerPass };
}
