// The dom0 end of the hypercall socket: numbered requests, their replies, and watch events.

import { connect, type Socket } from 'node:net';
import { HypervisorError, type HypervisorErrorCode } from '../driver';
import {
  FrameDecoder,
  encodeFrame,
  type Frame,
  type HypercallOp,
  type HypercallOps,
  type ResponseHeader,
} from './protocol';

export interface HypercallReply<K extends HypercallOp> {
  result: HypercallOps[K]['result'];
  payload: Buffer | null;
}

interface Pending {
  op: HypercallOp;
  resolve(frame: Frame): void;
  reject(err: Error): void;
}

export class HypercallClient {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<number, (path: string) => void>();
  private nextId = 1;
  private nextWatchId = 1;
  private failure: HypervisorError | null = null;

  private constructor(
    readonly socketPath: string,
    private readonly socket: Socket,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`connection to the emulated host at ${socketPath} failed: ${err.message}`));
    socket.on('close', () => this.fail(`connection to the emulated host at ${socketPath} closed`));
  }

  static connect(socketPath: string): Promise<HypercallClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const onError = (err: Error) => {
        socket.destroy();
        reject(new HypervisorError('EIO', `cannot connect to the emulated host at ${socketPath}: ${err.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.setNoDelay(true);
        resolve(new HypercallClient(socketPath, socket));
      });
    });
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  async call<K extends HypercallOp>(
    op: K,
    args: HypercallOps[K]['args'],
    payload?: Uint8Array | null,
  ): Promise<HypercallReply<K>> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const frame = await new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, { op, resolve, reject });
      this.socket.write(encodeFrame({ t: 'req', id, op, args }, payload));
    });
    const header = frame.header as ResponseHeader;
    if (!header.ok) {
      const code: HypervisorErrorCode = header.error?.code ?? 'EIO';
      throw new HypervisorError(code, header.error?.message ?? `${op} failed`);
    }
    return { result: header.result as HypercallOps[K]['result'], payload: frame.payload };
  }

  /** Registers a watch; `onChange` may be called before this resolves (the registration event). */
  async watch(path: string, onChange: (path: string) => void): Promise<number> {
    const watchId = this.nextWatchId++;
    this.watches.set(watchId, onChange);
    try {
      await this.call('xsWatch', { path, watchId });
    } catch (err) {
      this.watches.delete(watchId);
      throw err;
    }
    return watchId;
  }

  async unwatch(watchId: number): Promise<void> {
    if (!this.watches.delete(watchId)) return;
    if (this.failure) return;
    await this.call('xsUnwatch', { watchId });
  }

  close(): void {
    this.fail('the driver was closed');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(`malformed reply from the emulated host: ${(err as Error).message}`);
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const header = frame.header;
      if (header.t === 'res') {
        const pending = this.pending.get(header.id);
        if (!pending) continue;
        this.pending.delete(header.id);
        pending.resolve(frame);
      } else if (header.t === 'watch') {
        const onChange = this.watches.get(header.watchId);
        if (!onChange) continue;
        try {
          onChange(header.path);
        } catch (err) {
          // A watcher's bug must not break the connection; surface it asynchronously.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    }
  }

  private fail(message: string): void {
    if (this.failure) return;
    this.failure = new HypervisorError('EIO', message);
    for (const [, pending] of this.pending) {
      pending.reject(new HypervisorError('EIO', `${pending.op}: ${message}`));
    }
    this.pending.clear();
    this.watches.clear();
  }
}
