// Pull-style reading of a socket: exactly N bytes into a caller's buffer, or one length-prefixed
// frame. What arrives waits in one ring buffer of fixed size; the socket is paused while the ring
// is full, so a slow consumer (a receiver writing pages into a domain) pushes back on the sender
// through TCP.
//
// The bytes get into the ring one of two ways:
// - `StreamReader.adopting(accepted)`: the kernel's reads land in one fixed buffer (net.Socket's
//   `onread`) and are copied into the ring. Nothing is allocated per read. This is the receiver's
//   way: with 'data' events every read is a new ArrayBuffer, V8 counts those bytes against the
//   old generation's limit until the next full collection, and a receiver taking 120 MB/s ran a
//   mark-compact every few megabytes (BENCHMARKS.md §3);
// - `new StreamReader(socket)`: 'data' events, each chunk copied into the ring (a sender reading
//   its acks, or a Node whose accepted sockets cannot be adopted).

import { Socket, type SocketConstructorOpts } from 'node:net';
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

/** Bytes buffered before the socket is paused. */
export const DEFAULT_RING_BYTES = 8 * 1024 * 1024;
/** The fixed buffer one read of an adopted socket lands in. */
const READ_BUFFER_BYTES = 256 * 1024;

export class StreamReader {
  private readonly ring: Buffer;
  /** Where the next unread byte is. */
  private head = 0;
  /** Unread bytes in the ring. */
  private size = 0;
  /** 'data' chunks (or their rest) that did not fit in the ring yet. */
  private readonly overflow: Buffer[] = [];
  private socket: Socket | null = null;
  private paused = false;
  private discarding = false;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  /** Bytes handed to callers so far. */
  bytesRead = 0;

  /** Reads `socket` through its 'data' events. */
  constructor(socket?: Socket, capacity = DEFAULT_RING_BYTES) {
    this.ring = Buffer.allocUnsafeSlow(capacity);
    if (socket) {
      this.watch(socket);
      socket.on('data', (chunk: Buffer) => {
        if (this.discarding) return;
        this.overflow.push(chunk);
        this.fill();
        this.notify();
      });
    }
  }

  /**
   * A socket accepted by a net.Server (created with pauseOnConnect, so it has not read yet),
   * remade from its handle with reads into one fixed buffer, the way net.Server makes its sockets.
   * Falls back to 'data' events when this Node's sockets do not expose the handle. Use the
   * returned socket from now on: `accepted` is destroyed (its handle moved on).
   */
  static adopting(accepted: Socket, capacity = DEFAULT_RING_BYTES): { socket: Socket; reader: StreamReader } {
    const handle = (accepted as unknown as { _handle?: { useUserBuffer?: unknown } | null })._handle;
    if (!handle || typeof handle.useUserBuffer !== 'function') {
      accepted.resume();
      return { socket: accepted, reader: new StreamReader(accepted, capacity) };
    }
    // Room for two reads at least: the socket pauses once less than one read's worth is free.
    const reader = new StreamReader(undefined, Math.max(capacity, 2 * READ_BUFFER_BYTES));
    (accepted as unknown as { _handle: unknown })._handle = null;
    const options = {
      handle,
      readable: true,
      writable: true,
      onread: { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: (n: number, buf: Buffer) => reader.took(buf, n) },
    };
    const socket = new Socket(options as SocketConstructorOpts);
    accepted.destroy(); // without its handle: only tells the server this connection is no longer its
    reader.watch(socket);
    return { socket, reader };
  }

  /** The adopted socket's read of `n` bytes into `buf`; false pauses the socket (the ring is nearly full). */
  private took(buf: Buffer, n: number): boolean {
    if (this.discarding) return true;
    this.put(buf.subarray(0, n));
    this.notify();
    if (this.ring.length - this.size >= READ_BUFFER_BYTES) return true;
    this.paused = true;
    return false;
  }

  private watch(socket: Socket): void {
    this.socket = socket;
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
      if (this.size > 0) {
        const take = Math.min(n - filled, this.size, this.ring.length - this.head);
        this.ring.copy(target, filled, this.head, this.head + take);
        filled += take;
        this.head = (this.head + take) % this.ring.length;
        this.size -= take;
        this.bytesRead += take;
        this.fill();
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
    this.discarding = true;
    this.overflow.length = 0;
    this.size = 0;
    this.head = 0;
    this.resume();
  }

  /** Copies `bytes` (at most the free space) in after the unread ones. */
  private put(bytes: Uint8Array): void {
    const capacity = this.ring.length;
    const tail = (this.head + this.size) % capacity;
    const first = Math.min(bytes.length, capacity - tail);
    this.ring.set(bytes.subarray(0, first), tail);
    if (first < bytes.length) this.ring.set(bytes.subarray(first), 0);
    this.size += bytes.length;
  }

  /** Moves waiting 'data' chunks into the ring's free space; pauses the socket while some wait, resumes once the ring is half empty. */
  private fill(): void {
    while (this.overflow.length > 0 && this.size < this.ring.length) {
      const chunk = this.overflow[0];
      const fits = Math.min(chunk.length, this.ring.length - this.size);
      this.put(chunk.subarray(0, fits));
      if (fits === chunk.length) this.overflow.shift();
      else this.overflow[0] = chunk.subarray(fits);
    }
    if (this.overflow.length > 0) {
      if (!this.paused) {
        this.paused = true;
        this.socket?.pause();
      }
    } else if (this.paused && this.size <= this.ring.length / 2) {
      this.resume();
    }
  }

  private resume(): void {
    this.paused = false;
    this.socket?.resume();
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
