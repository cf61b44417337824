// The per-page dirty history and the layered classifier of the thesis ("dirty page judder layered
// algorithm"). Pure: it is fed bitmaps and answers with bitmaps and counts.
//
// Every page keeps the dirty bits of its last 8 rounds in one byte (bit 0 = the latest round).
// Layers: cold (not dirtied within the window), warm (dirtied, but fewer than `threshold` times),
// hot (dirtied in at least `threshold` of the last `window` rounds: "jittery"). A jittery page is
// held back instead of being resent every round; it is released (sent) once it has stayed clean
// for `demoteAfter` rounds. Whatever is unsent at stop-and-copy goes in the final round.
//
// The Xen policies use the same bookkeeping with holding off, so the send set is then exactly
// "dirtied since last sent", as Xen's.

export interface LayeredParams {
  /** W: rounds of history that count (1..8). */
  window: number;
  /** D: a page dirtied in at least D of the last W rounds is jittery. */
  threshold: number;
  /** A held page that stayed clean for this many rounds is demoted and sent. */
  demoteAfter: number;
}

export const DEFAULT_LAYERED_PARAMS: LayeredParams = { window: 4, threshold: 3, demoteAfter: 1 };

export interface LayerCounts {
  cold: number;
  warm: number;
  hot: number;
}

export interface RoundClassification {
  /** Pages to send in this round. */
  sendSet: Uint8Array;
  pagesToSend: number;
  /** Unsent pages held back (jittery). */
  held: number;
  /** Pages sent this round that were held in the previous round (they calmed down). */
  released: number;
  layers: LayerCounts;
}

const POPCOUNT8 = (() => {
  const t = new Uint8Array(256);
  for (let i = 1; i < 256; i++) t[i] = (i & 1) + t[i >> 1];
  return t;
})();

export class DirtyPageClassifier {
  private readonly history: Uint8Array;
  /** Pages whose current contents have not been sent yet. */
  private readonly unsent: Uint8Array;
  /** Pages held at the last classification. */
  private readonly held: Uint8Array;
  private readonly windowMask: number;
  private readonly recentMask: number;

  constructor(
    readonly pages: number,
    readonly holdJittery: boolean,
    readonly params: LayeredParams = DEFAULT_LAYERED_PARAMS,
  ) {
    if (!(params.window >= 1 && params.window <= 8)) throw new RangeError(`layered window must be 1..8, got ${params.window}`);
    if (!(params.threshold >= 1 && params.threshold <= params.window)) {
      throw new RangeError(`layered threshold must be 1..window (${params.window}), got ${params.threshold}`);
    }
    if (!(params.demoteAfter >= 1 && params.demoteAfter <= 8)) throw new RangeError(`layered demoteAfter must be 1..8, got ${params.demoteAfter}`);
    const bytes = Math.ceil(pages / 8);
    this.history = new Uint8Array(pages);
    this.unsent = new Uint8Array(bytes);
    this.held = new Uint8Array(bytes);
    this.windowMask = (1 << params.window) - 1;
    this.recentMask = (1 << params.demoteAfter) - 1;
  }

  /** Round 0: every populated page is unsent. Returns the send set (a copy of the p2m). */
  firstRound(p2m: Uint8Array): RoundClassification {
    this.unsent.set(p2m.subarray(0, this.unsent.length));
    const sendSet = new Uint8Array(this.unsent);
    let n = 0;
    for (let i = 0; i < sendSet.length; i++) n += POPCOUNT8[sendSet[i]];
    return { sendSet, pagesToSend: n, held: 0, released: 0, layers: { cold: n, warm: 0, hot: 0 } };
  }

  /**
   * A later round: `dirty` is the bitmap the CLEAN returned. With `final`, nothing is held: the send
   * set is every unsent page (the final CLEAN plus everything held or not yet sent).
   */
  classify(dirty: Uint8Array, final = false): RoundClassification {
    const sendSet = new Uint8Array(this.unsent.length);
    const layers: LayerCounts = { cold: 0, warm: 0, hot: 0 };
    let pagesToSend = 0;
    let held = 0;
    let released = 0;
    const { history, unsent, windowMask, recentMask } = this;
    const threshold = this.params.threshold;
    for (let byte = 0; byte < sendSet.length; byte++) {
      const d = dirty[byte] ?? 0;
      const dirtyOrUnsent = d | unsent[byte];
      const base = byte << 3;
      let sendByte = 0;
      let heldByte = 0;
      for (let bit = 0; bit < 8; bit++) {
        const pfn = base + bit;
        if (pfn >= this.pages) break;
        const h = ((history[pfn] << 1) | ((d >> bit) & 1)) & 0xff;
        history[pfn] = h;
        const inWindow = POPCOUNT8[h & windowMask];
        const jittery = inWindow >= threshold && (h & recentMask) !== 0;
        if (inWindow === 0) layers.cold++;
        else if (jittery) layers.hot++;
        else layers.warm++;
        if (((dirtyOrUnsent >> bit) & 1) === 0) continue;
        if (!final && this.holdJittery && jittery) {
          heldByte |= 1 << bit;
          held++;
        } else {
          sendByte |= 1 << bit;
          pagesToSend++;
          if ((this.held[byte] >> bit) & 1) released++;
        }
      }
      unsent[byte] = dirtyOrUnsent;
      sendSet[byte] = sendByte;
      this.held[byte] = heldByte;
    }
    return { sendSet, pagesToSend, held, released, layers };
  }

  /** The page-streamer took this send set: those pages' current contents are on their way. */
  markSent(sendSet: Uint8Array): void {
    const { unsent } = this;
    for (let i = 0; i < unsent.length; i++) unsent[i] &= ~sendSet[i];
  }

  /** Pages not sent yet (held or left over from a prepared round that was not sent). */
  unsentCount(): number {
    let n = 0;
    for (let i = 0; i < this.unsent.length; i++) n += POPCOUNT8[this.unsent[i]];
    return n;
  }
}
