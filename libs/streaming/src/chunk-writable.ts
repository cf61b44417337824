// A Writable that regroups whatever is written into chunks of a fixed size (the last one
// shorter) and hands each to an async `deliver`, one at a time: the shape a server-streaming gRPC
// response needs (messages of bounded size, backpressure through the returned promise).

import { Writable } from 'node:stream';

export class ChunkWritable extends Writable {
  private readonly parts: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly chunkBytes: number,
    private readonly deliver: (chunk: Buffer) => Promise<void>,
  ) {
    super({ highWaterMark: chunkBytes });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.parts.push(chunk);
    this.buffered += chunk.length;
    this.drainFull().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const rest = this.take(this.buffered);
    (rest.length > 0 ? this.deliver(rest) : Promise.resolve()).then(() => callback(), callback);
  }

  private async drainFull(): Promise<void> {
    while (this.buffered >= this.chunkBytes) await this.deliver(this.take(this.chunkBytes));
  }

  private take(n: number): Buffer {
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.buffered);
    const chunk = all.subarray(0, n);
    this.parts.length = 0;
    this.buffered -= n;
    if (this.buffered > 0) this.parts.push(all.subarray(n));
    return chunk;
  }
}
