// Exact-length reads over a sequence of chunks (a file read stream, a socket, a gRPC stream, or
// one Buffer), keeping only what has not been consumed yet.

import { TruncatedStream } from './errors';

export class ByteReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private consumed = 0;
  private done = false;
  private readonly source: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array> | Uint8Array) {
    const iterable: AsyncIterable<Uint8Array> = source instanceof Uint8Array ? (async function* () { yield source; })() : source;
    this.source = iterable[Symbol.asyncIterator]();
  }

  /** Bytes consumed so far: the stream offset of the next read. */
  get offset(): number {
    return this.consumed;
  }

  /** The next `n` bytes, consumed; TruncatedStream when the input ends first. */
  async read(n: number, what: string): Promise<Buffer> {
    const bytes = await this.peek(n, what);
    this.skip(n);
    return bytes;
  }

  /** The next `n` bytes without consuming them. */
  async peek(n: number, what: string): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    if (!(await this.fill(n))) throw new TruncatedStream(what, this.consumed + this.buffered);
    const first = this.chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks.length = 0;
    this.chunks.push(joined);
    return joined.subarray(0, n);
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Stops reading the source (ends a file stream early, for instance). */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.source.return?.();
    }
  }

  private skip(n: number): void {
    this.consumed += n;
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0];
      if (first.length <= n) {
        this.chunks.shift();
        n -= first.length;
      } else {
        this.chunks[0] = first.subarray(n);
        n = 0;
      }
    }
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const next = await this.source.next();
      if (next.done) {
        this.done = true;
        break;
      }
      const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return this.buffered >= n;
  }
}
