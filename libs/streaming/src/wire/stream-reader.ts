// Pull-style reading of a socket: exactly N bytes into a caller's buffer, or one length-prefixed
// frame. The socket is paused while more than `highWaterBytes` wait unread, so a slow consumer
// (a receiver writing pages into a domain) pushes back on the sender through TCP.

import type { Socket } from 'node:net';
import { LENGTH_PREFIX_BYTES } from './frames';

export class StreamEnded extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamEnded';
  }
}

export class FrameTooLarge extends Error {
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    super(`frame of ${length} bytes exceeds the limit of ${limit}`);
    this.name = 'FrameTooLarge';
  }
}

export class StreamReader {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  private buffered = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private paused = false;
  /** Bytes handed to callers so far. */
  bytesRead = 0;

  constructor(
    private readonly socket: Socket,
    private readonly highWaterBytes = 8 * 1024 * 1024,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= this.highWaterBytes && !this.paused) {
        this.paused = true;
        socket.pause();
      }
      this.notify();
    });
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    socket.on('error', (err) => {
      this.failure ??= err;
      this.notify();
    });
  }

  /**
   * Fills target[0, n) from the stream. Resolves false when the stream ended cleanly before the
   * first byte (allowed only at a message boundary); throws StreamEnded when it ends inside.
   */
  async readInto(target: Buffer, n: number): Promise<boolean> {
    let filled = 0;
    while (filled < n) {
      if (this.buffered > 0) {
        const chunk = this.chunks[0];
        const take = Math.min(n - filled, chunk.length - this.head);
        chunk.copy(target, filled, this.head, this.head + take);
        filled += take;
        this.head += take;
        this.buffered -= take;
        this.bytesRead += take;
        if (this.head === chunk.length) {
          this.chunks.shift();
          this.head = 0;
        }
        if (this.paused && this.buffered < this.highWaterBytes / 2) {
          this.paused = false;
          this.socket.resume();
        }
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) {
        if (filled === 0) return false;
        throw new StreamEnded(`the connection ended ${n - filled} bytes short of a ${n}-byte read`);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    return true;
  }

  /**
   * One frame's message bytes, as a view into `scratch` (valid until the next read), or null when
   * the stream ended cleanly between frames. Throws FrameTooLarge above `maxBytes`.
   */
  async readFrame(scratch: Buffer, maxBytes: number): Promise<Buffer | null> {
    if (!(await this.readInto(scratch, LENGTH_PREFIX_BYTES))) return null;
    const length = scratch.readUInt32BE(0);
    if (length > maxBytes || length > scratch.length) throw new FrameTooLarge(length, Math.min(maxBytes, scratch.length));
    if (length === 0) return scratch.subarray(0, 0);
    if (!(await this.readInto(scratch, length))) throw new StreamEnded('the connection ended after a frame length');
    return scratch.subarray(0, length);
  }

  /** Drops everything unread from now on (a refused connection waiting for the peer to close). */
  discard(): void {
    this.chunks.length = 0;
    this.buffered = 0;
    this.head = 0;
    this.socket.removeAllListeners('data');
    this.socket.on('data', () => undefined);
    this.socket.resume();
  }

  private finish(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
