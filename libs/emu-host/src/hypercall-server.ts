// The emulated host's hypercall socket: framed requests from dom0 processes (see the protocol in
// @ferry/hypervisor), dispatched to EmuHost; replies carry results or HypervisorErrors; xenstore
// watches of a connection send events on it and end with it.

import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  FrameDecoder,
  HYPERCALL_OPS,
  HypervisorError,
  decodePfns,
  encodeFrame,
  type Frame,
  type FrameHeader,
  type HypercallOp,
  type RequestHeader,
} from '@ferry/hypervisor';
import type { Logger } from 'pino';
import type { EmuHost } from './emu-host';
import type { WatchHandle } from './xenstore';

/** Unix socket paths are limited to 107 bytes on Linux (sun_path). */
const MAX_SOCKET_PATH_BYTES = 107;

interface Reply {
  result: unknown;
  payload?: Uint8Array | null;
}

type Args = Record<string, unknown>;

export class HypercallServer {
  private server: Server | null = null;
  private readonly connections = new Set<Socket>();

  constructor(
    private readonly host: EmuHost,
    private readonly logger: Logger,
  ) {}

  async listen(socketPath: string): Promise<void> {
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter --dir`);
    }
    if (existsSync(socketPath)) {
      if (await isListening(socketPath)) throw new Error(`another emulated host is already listening on ${socketPath}`);
      unlinkSync(socketPath); // left behind by a host that was killed
    }
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections.add(socket);
    const decoder = new FrameDecoder();
    const watches = new Map<number, WatchHandle>();
    const send = (header: FrameHeader, payload?: Uint8Array | null) => {
      if (!socket.destroyed) socket.write(encodeFrame(header, payload));
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'dropping a connection that sent a malformed frame');
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        if (frame.header.t !== 'req') continue;
        const request = frame.header;
        this.dispatch(request, frame.payload, watches, send).then(
          (reply) => send({ t: 'res', id: request.id, ok: true, result: reply.result }, reply.payload),
          (err: unknown) => send({ t: 'res', id: request.id, ok: false, error: toWireError(err, request.op, this.logger) }),
        );
      }
    });
    socket.on('error', () => {}); // a client that vanished; 'close' follows
    socket.on('close', () => {
      this.connections.delete(socket);
      for (const w of watches.values()) w.close();
      watches.clear();
    });
  }

  private async dispatch(
    request: RequestHeader,
    payload: Buffer | null,
    watches: Map<number, WatchHandle>,
    send: (header: FrameHeader) => void,
  ): Promise<Reply> {
    const host = this.host;
    const op: HypercallOp = request.op;
    if (!HYPERCALL_OPS.includes(op)) throw new HypervisorError('EINVAL', `unknown hypercall ${JSON.stringify(op)}`);
    const args = (typeof request.args === 'object' && request.args !== null ? request.args : {}) as Args;
    switch (op) {
      case 'hostInfo':
        return { result: host.hostInfo() };
      case 'listDomains':
        return { result: host.listDomains() };
      case 'domainInfo':
        return { result: host.domainInfo(args.domid) };
      case 'createDomain':
        return { result: { domid: await host.createDomain(args.spec as never) } };
      case 'createRestoreDomain':
        return { result: { domid: host.createRestoreDomain(args.spec as never) } };
      case 'destroy':
        await host.destroy(args.domid);
        return { result: {} };
      case 'pause':
        await host.pause(args.domid);
        return { result: {} };
      case 'unpause':
        await host.unpause(args.domid);
        return { result: {} };
      case 'resumeSuspended':
        await host.resumeSuspended(args.domid);
        return { result: {} };
      case 'logDirty': {
        const { stats, bitmap } = host.logDirty(args.domid, args.op, args.final);
        return { result: stats ? { stats } : {}, payload: bitmap };
      }
      case 'p2m':
        return { result: {}, payload: host.p2m(args.domid) };
      case 'memoryObjects':
        return { result: host.memoryObjects(args.domid) };
      case 'populate':
        return { result: { populated: host.populate(args.domid, decodePfns(payload)) } };
      case 'getVcpuContext':
        return { result: {}, payload: await host.getVcpuContext(args.domid) };
      case 'setVcpuContext':
        await host.setVcpuContext(args.domid, payload ?? new Uint8Array(0));
        return { result: {} };
      case 'xsRead':
        return { result: { value: host.xenstore.read(args.path as string) } };
      case 'xsWrite':
        host.xenstore.write(args.path as string, args.value as string);
        return { result: {} };
      case 'xsWatch': {
        const watchId = args.watchId;
        if (typeof watchId !== 'number' || !Number.isInteger(watchId)) throw new HypervisorError('EINVAL', 'watchId must be an integer');
        if (watches.has(watchId)) throw new HypervisorError('EEXIST', `watch ${watchId} is already registered on this connection`);
        const handle = host.xenstore.watch(args.path as string, (path) => send({ t: 'watch', watchId, path }));
        watches.set(watchId, handle);
        return { result: {} };
      }
      case 'xsUnwatch': {
        const handle = watches.get(args.watchId as number);
        handle?.close();
        watches.delete(args.watchId as number);
        return { result: {} };
      }
    }
  }
}

function toWireError(err: unknown, op: string, logger: Logger): { code: HypervisorError['code']; message: string } {
  if (err instanceof HypervisorError) return { code: err.code, message: err.message };
  // Anything else is a bug or a system failure: keep the details in the host's log.
  const message = err instanceof Error ? err.message : String(err);
  logger.error({ op, err: err instanceof Error ? err.stack : message }, 'hypercall failed unexpectedly');
  return { code: 'EIO', message: `${op} failed in the emulated host: ${message}` };
}

function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
