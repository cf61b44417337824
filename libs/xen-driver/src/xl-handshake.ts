// The messages of xl's migration handshake (tools/xl/xl.h, xl_migrate.c `migrate_receive`), as
// the receiver (`xl migrate-receive`) writes them on its stdout and reads them on its stdin:
//
//   receiver: banner "xl migration receiver ready, send binary domain data.\n" (no NUL)
//   sender:   the xl header with the JSON config, then the libxl stream
//   receiver: "domain received, ready to unpause" + NUL   (the domain is restored, paused)
//   sender:   "domain is yours, you are cleared to unpause" + NUL   (permission to go)
//   receiver: "my copy unpause results are as follows" + NUL, then one byte: 0 = running,
//             else -rc (the receiver then destroys its copy and sends the permission back)
//
// XlAckParser turns the receiver's stdout bytes, however they are split, into those events.

export const XL_RECEIVER_BANNER = Buffer.from('xl migration receiver ready, send binary domain data.\n', 'latin1');
export const XL_RECEIVER_READY = Buffer.from('domain received, ready to unpause\0', 'latin1');
export const XL_PERMISSION_TO_GO = Buffer.from('domain is yours, you are cleared to unpause\0', 'latin1');
export const XL_REPORT = Buffer.from('my copy unpause results are as follows\0', 'latin1');

export type XlAckEvent = { kind: 'banner' } | { kind: 'ready' } | { kind: 'report'; code: number } | { kind: 'permission-back' };

/** What the receiver says, in the order xl says it; anything else is a protocol error. */
export class XlAckParser {
  private buffered: Buffer = Buffer.alloc(0);
  private step: 'banner' | 'ready' | 'report' | 'code' | 'permission-back' | 'done' = 'banner';
  private failedCode = 0;

  /** Feeds bytes; returns the events they complete. Throws on bytes xl would never send. */
  push(chunk: Buffer): XlAckEvent[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const events: XlAckEvent[] = [];
    for (;;) {
      const expected = this.expected();
      if (expected === null) {
        if (this.step === 'code') {
          if (this.buffered.length < 1) return events;
          const code = this.buffered[0];
          this.buffered = this.buffered.subarray(1);
          this.failedCode = code;
          this.step = code === 0 ? 'done' : 'permission-back';
          events.push({ kind: 'report', code });
          continue;
        }
        if (this.buffered.length > 0) throw new Error(`xl migrate-receive wrote ${this.buffered.length} unexpected bytes after the handshake ended`);
        return events;
      }
      const n = Math.min(expected.length, this.buffered.length);
      if (!this.buffered.subarray(0, n).equals(expected.subarray(0, n))) {
        throw new Error(`xl migrate-receive wrote ${JSON.stringify(this.buffered.subarray(0, 80).toString('latin1'))} where ${JSON.stringify(expected.toString('latin1'))} was due`);
      }
      if (n < expected.length) return events;
      this.buffered = this.buffered.subarray(n);
      switch (this.step) {
        case 'banner':
          this.step = 'ready';
          events.push({ kind: 'banner' });
          break;
        case 'ready':
          this.step = 'report';
          events.push({ kind: 'ready' });
          break;
        case 'report':
          this.step = 'code';
          break;
        case 'permission-back':
          this.step = 'done';
          events.push({ kind: 'permission-back' });
          break;
      }
    }
  }

  /** The report's code (0 = running), once it came. */
  get reportCode(): number {
    return this.failedCode;
  }

  private expected(): Buffer | null {
    switch (this.step) {
      case 'banner':
        return XL_RECEIVER_BANNER;
      case 'ready':
        return XL_RECEIVER_READY;
      case 'report':
        return XL_REPORT;
      case 'permission-back':
        return XL_PERMISSION_TO_GO;
      default:
        return null;
    }
  }
}
