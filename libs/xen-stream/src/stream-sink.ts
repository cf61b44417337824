// Writing a stream into a Node Writable with backpressure: every write waits for 'drain' when
// the Writable's buffer is full, so a slow consumer (a file, a socket, a gRPC call) holds the
// producer back instead of letting memory grow.

import type { Writable } from 'node:stream';

export class StreamSink {
  private failure: Error | null = null;
  private written = 0;

  constructor(private readonly out: Writable) {
    // Remember an error the Writable reports between our writes; the next write throws it.
    out.on('error', (err: Error) => {
      this.failure ??= err;
    });
  }

  /** Bytes handed to the Writable so far. */
  get bytesWritten(): number {
    return this.written;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    const ok = this.out.write(chunk);
    this.written += chunk.byteLength;
    if (!ok) await this.drained();
    this.check();
  }

  /** Ends the Writable and waits until everything reached its destination. */
  async end(): Promise<void> {
    this.check();
    await new Promise<void>((resolve, reject) => {
      this.out.end((err?: Error | null) => (err ? reject(err) : resolve()));
    });
  }

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.out.destroyed || this.out.writableEnded) throw new Error('the stream output is closed');
  }

  private drained(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.out.off('drain', onDrain);
        this.out.off('error', onError);
        this.out.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done();
      const onError = (err: Error) => done(err);
      const onClose = () => done(new Error('the stream output closed before it drained'));
      this.out.on('drain', onDrain);
      this.out.on('error', onError);
      this.out.on('close', onClose);
    });
  }
}
