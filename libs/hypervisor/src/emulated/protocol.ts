// The hypercall protocol between dom0 processes and an emulated Xen host, over a unix socket.
//
// Frame: u32 LE length of the rest | u32 LE header length | header (UTF-8 JSON) | payload bytes.
// The header is a request {t:'req', id, op, args}, a response {t:'res', id, ok, result | error},
// or an asynchronous xenstore watch event {t:'watch', watchId, path}. The payload carries binary
// data (dirty bitmaps, p2m, vCPU contexts, pfn lists) so it never goes through JSON. Page contents
// never travel here: dom0 maps the domain's shared memory itself.

import type {
  DomainInfo,
  DomainSpec,
  HostInfo,
  HypervisorErrorCode,
  LogDirtyStats,
  RestoreDomainSpec,
} from '../driver';
import type { DomainMemoryNames } from './memory-layout';

/** Frames above this size are refused: no legitimate message comes close (a 64 GiB guest's bitmap is 2 MiB). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export const HYPERCALL_SOCKET_NAME = 'xen.sock';

export interface HypercallOps {
  hostInfo: { args: Record<string, never>; result: HostInfo };
  listDomains: { args: Record<string, never>; result: DomainInfo[] };
  domainInfo: { args: { domid: number }; result: DomainInfo };
  createDomain: { args: { spec: DomainSpec }; result: { domid: number } };
  createRestoreDomain: { args: { spec: RestoreDomainSpec }; result: { domid: number } };
  destroy: { args: { domid: number }; result: Record<string, never> };
  pause: { args: { domid: number }; result: Record<string, never> };
  unpause: { args: { domid: number }; result: Record<string, never> };
  resumeSuspended: { args: { domid: number }; result: Record<string, never> };
  /** enable/disable: no payload back. clean/peek: the bitmap as payload. */
  logDirty: {
    args: { domid: number; op: 'enable' | 'disable' | 'clean' | 'peek'; final?: boolean };
    result: { stats?: LogDirtyStats };
  };
  /** Payload back: the p2m bitmap. */
  p2m: { args: { domid: number }; result: Record<string, never> };
  /** Where the domain's memory lives, for dom0 to map it. */
  memoryObjects: { args: { domid: number }; result: { names: DomainMemoryNames; maxPages: number } };
  /** Payload: the pfns (u32 LE) to populate in a paused domain (a restore's writePages). */
  populate: { args: { domid: number }; result: { populated: number } };
  /** Payload back: the context bytes. */
  getVcpuContext: { args: { domid: number }; result: Record<string, never> };
  /** Payload: the context bytes. */
  setVcpuContext: { args: { domid: number }; result: Record<string, never> };
  xsRead: { args: { path: string }; result: { value: string | null } };
  xsWrite: { args: { path: string; value: string }; result: Record<string, never> };
  /** The client picks watchId (unique per connection) so it can route the first event, which may arrive with the reply. */
  xsWatch: { args: { path: string; watchId: number }; result: Record<string, never> };
  xsUnwatch: { args: { watchId: number }; result: Record<string, never> };
}

export type HypercallOp = keyof HypercallOps;
export const HYPERCALL_OPS: readonly HypercallOp[] = [
  'hostInfo',
  'listDomains',
  'domainInfo',
  'createDomain',
  'createRestoreDomain',
  'destroy',
  'pause',
  'unpause',
  'resumeSuspended',
  'logDirty',
  'p2m',
  'memoryObjects',
  'populate',
  'getVcpuContext',
  'setVcpuContext',
  'xsRead',
  'xsWrite',
  'xsWatch',
  'xsUnwatch',
];

export interface RequestHeader {
  t: 'req';
  id: number;
  op: HypercallOp;
  args: unknown;
}

export interface ResponseHeader {
  t: 'res';
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: HypervisorErrorCode; message: string };
}

export interface WatchEventHeader {
  t: 'watch';
  watchId: number;
  path: string;
}

export type FrameHeader = RequestHeader | ResponseHeader | WatchEventHeader;

export interface Frame {
  header: FrameHeader;
  /** Null when the frame carries no payload. */
  payload: Buffer | null;
}

export function encodeFrame(header: FrameHeader, payload?: Uint8Array | null): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const payloadBytes = payload ? payload.byteLength : 0;
  const frame = Buffer.allocUnsafe(8 + json.length + payloadBytes);
  frame.writeUInt32LE(4 + json.length + payloadBytes, 0);
  frame.writeUInt32LE(json.length, 4);
  json.copy(frame, 8);
  if (payload && payloadBytes > 0) frame.set(payload, 8 + json.length);
  if (frame.length - 4 > MAX_FRAME_BYTES) throw new RangeError(`frame of ${frame.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  return frame;
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Reassembles frames from a byte stream. */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Feeds a chunk; returns every frame completed by it. Throws ProtocolError on a malformed stream. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    while (this.pendingBytes >= 4) {
      const head = this.peek(4);
      const length = head.readUInt32LE(0);
      if (length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
      if (length < 4) throw new ProtocolError(`frame of ${length} bytes is too short`);
      if (this.pendingBytes < 4 + length) break;
      const frame = this.take(4 + length);
      const headerLength = frame.readUInt32LE(4);
      if (headerLength > length - 4) throw new ProtocolError(`header of ${headerLength} bytes overruns its frame`);
      let header: FrameHeader;
      try {
        header = JSON.parse(frame.toString('utf8', 8, 8 + headerLength)) as FrameHeader;
      } catch (err) {
        throw new ProtocolError(`frame header is not JSON: ${(err as Error).message}`);
      }
      if (typeof header !== 'object' || header === null || !['req', 'res', 'watch'].includes(header.t)) {
        throw new ProtocolError('frame header has no valid type');
      }
      const payload = frame.length > 8 + headerLength ? frame.subarray(8 + headerLength) : null;
      frames.push({ header, payload });
    }
    return frames;
  }

  /** The first n bytes (fewer if not available) without consuming them. */
  private peek(n: number): Buffer {
    if (this.pending[0].length >= n || this.pending.length === 1) return this.pending[0];
    this.pending = [Buffer.concat(this.pending)];
    return this.pending[0];
  }

  private take(n: number): Buffer {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
    const all = this.pending[0];
    const frame = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes -= n;
    return frame;
  }
}

/** pfns as the u32 LE payload of a populate request. */
export function encodePfns(pfns: readonly number[]): Uint8Array {
  const out = new Uint32Array(pfns.length);
  for (let i = 0; i < pfns.length; i++) out[i] = pfns[i];
  return new Uint8Array(out.buffer);
}

export function decodePfns(payload: Buffer | null): Uint32Array {
  if (!payload || payload.length === 0) return new Uint32Array(0);
  if (payload.length % 4 !== 0) throw new ProtocolError('pfn payload length is not a multiple of 4');
  // Copy: the payload may not be 4-byte aligned inside its frame.
  const aligned = new Uint8Array(payload.length);
  aligned.set(payload);
  return new Uint32Array(aligned.buffer);
}
