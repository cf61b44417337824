// The small x86 HVM records that close a libxc stream, as bodies (frame them with encodeRecord):
//
//   X86_TSC_INFO (0x08): u32 mode, u32 khz, u64 nsec, u32 incarnation, u32 reserved
//   HVM_PARAMS   (0x0A): u32 count, u32 reserved, then {u64 index, u64 value} x count
//                        (must come before HVM_CONTEXT; a restore applies each with set_param)

import { MalformedStream } from './errors';
import { TSC_INFO_BYTES } from './format';

export interface TscInfo {
  /** XEN_TSC_MODE_*: 0 default, 1 always emulate, 2 never emulate. */
  mode: number;
  /** Guest TSC frequency; 0 lets the receiving host use its own. */
  khz: number;
  /** Elapsed nanoseconds at save time. */
  nsec: bigint;
  incarnation: number;
}

export interface HvmParam {
  index: bigint;
  value: bigint;
}

export const DEFAULT_TSC_INFO: TscInfo = { mode: 0, khz: 0, nsec: 0n, incarnation: 0 };

export function encodeTscInfo(tsc: TscInfo): Buffer {
  const b = Buffer.alloc(TSC_INFO_BYTES);
  b.writeUInt32LE(tsc.mode, 0);
  b.writeUInt32LE(tsc.khz, 4);
  b.writeBigUInt64LE(tsc.nsec, 8);
  b.writeUInt32LE(tsc.incarnation, 16);
  return b;
}

export function decodeTscInfo(body: Buffer, offset = 0): TscInfo {
  if (body.length !== TSC_INFO_BYTES) throw new MalformedStream(`X86_TSC_INFO of ${body.length} bytes, expected ${TSC_INFO_BYTES}`, offset);
  if (body.readUInt32LE(20) !== 0) throw new MalformedStream('reserved field of X86_TSC_INFO is not zero', offset + 20);
  return { mode: body.readUInt32LE(0), khz: body.readUInt32LE(4), nsec: body.readBigUInt64LE(8), incarnation: body.readUInt32LE(16) };
}

export function encodeHvmParams(params: readonly HvmParam[]): Buffer {
  const b = Buffer.alloc(8 + 16 * params.length);
  b.writeUInt32LE(params.length, 0);
  params.forEach((p, i) => {
    b.writeBigUInt64LE(p.index, 8 + 16 * i);
    b.writeBigUInt64LE(p.value, 16 + 16 * i);
  });
  return b;
}

export function decodeHvmParams(body: Buffer, offset = 0): HvmParam[] {
  if (body.length < 8) throw new MalformedStream(`HVM_PARAMS of ${body.length} bytes; it needs at least 8`, offset);
  const count = body.readUInt32LE(0);
  if (body.readUInt32LE(4) !== 0) throw new MalformedStream('reserved field of HVM_PARAMS is not zero', offset + 4);
  if (body.length !== 8 + 16 * count) throw new MalformedStream(`HVM_PARAMS of ${count} entries should be ${8 + 16 * count} bytes, is ${body.length}`, offset);
  const params: HvmParam[] = [];
  for (let i = 0; i < count; i++) params.push({ index: body.readBigUInt64LE(8 + 16 * i), value: body.readBigUInt64LE(16 + 16 * i) });
  return params;
}
