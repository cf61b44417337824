// What follows the pages in an exported stream, out of the driver's opaque vCPU context:
// - the xen driver's blob ("FERRYXEN", libs/xen-driver/src/vcpu-context-blob.ts): Xen's own
//   records (X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS, X86_CPUID_POLICY, X86_MSR_POLICY), framed as
//   in the libxc stream after a 16-byte header, plus Ferry's optional FERRY_DOMAIN record with
//   the guest type. Each Xen record goes into the stream as it is.
// - a bare HVM save image (what XEN_DOMCTL_gethvmcontext returns): HVM_CONTEXT as it is.
// - anything else, i.e. the emulated driver's state (not x86 state): a minimal HVM save image,
//   under which a real Xen leaves every vCPU down, and the blob rides in the config's "ferry"
//   section so that Ferry can read it back.

import {
  checkHvmSaveImage,
  decodeHvmParams,
  decodeRecordHeader,
  decodeTscInfo,
  LIBXC_OPTIONAL_RECORD_BIT,
  LibxcRecordType,
  minimalHvmContext,
  paddedLength,
  RECORD_HEADER_BYTES,
  type FinalState,
} from '@ferry/xen-stream';
import { internal } from './errors';

export interface StreamState {
  /** 'unknown' when the context does not say (a bare HVM image, or the emulated driver's state). */
  guestType: 'pvh' | 'hvm' | 'unknown';
  finalState: FinalState;
  cpuPolicy?: { cpuid?: Uint8Array; msr?: Uint8Array };
  /** The context itself, when Xen's records cannot carry it (it goes into the config). */
  opaqueContext?: Uint8Array;
}

const XEN_DRIVER_MAGIC = 'FERRYXEN';
const XEN_DRIVER_VERSION = 1;
const XEN_DRIVER_HEADER_BYTES = 16;
/** Ferry's optional record in the xen driver's blob: {guest type u32 (1 HVM, 2 PVH), vcpus u32, p2m size u64, xen major u32, xen minor u32}. */
const FERRY_DOMAIN_RECORD = 0x8000_0001;

export function streamStateOf(context: Uint8Array): StreamState {
  const bytes = Buffer.from(context.buffer, context.byteOffset, context.byteLength);
  if (bytes.length >= XEN_DRIVER_HEADER_BYTES && bytes.toString('latin1', 0, 8) === XEN_DRIVER_MAGIC) return fromXenDriverBlob(bytes);
  if (checkHvmSaveImage(bytes).ok) return { guestType: 'unknown', finalState: { hvmContext: bytes } };
  return { guestType: 'unknown', finalState: { hvmContext: minimalHvmContext() }, opaqueContext: context };
}

function fromXenDriverBlob(blob: Buffer): StreamState {
  const version = blob.readUInt32LE(8);
  if (version !== XEN_DRIVER_VERSION) throw bad(`version ${version}, expected ${XEN_DRIVER_VERSION}`);
  const count = blob.readUInt32LE(12);
  const state: StreamState = { guestType: 'unknown', finalState: { hvmContext: new Uint8Array(0) } };
  let at = XEN_DRIVER_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + RECORD_HEADER_BYTES > blob.length) throw bad(`record ${i} of ${count} is missing`);
    const { type, length } = decodeRecordHeader(blob.subarray(at));
    const body = blob.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length);
    if (body.length !== length) throw bad(`record ${i} (type 0x${type.toString(16)}) runs past the end`);
    at += RECORD_HEADER_BYTES + paddedLength(length);
    switch (type) {
      case LibxcRecordType.X86_TSC_INFO:
        state.finalState.tsc = decodeTscInfo(body);
        break;
      case LibxcRecordType.HVM_CONTEXT:
        state.finalState.hvmContext = body;
        break;
      case LibxcRecordType.HVM_PARAMS:
        state.finalState.hvmParams = decodeHvmParams(body);
        break;
      case LibxcRecordType.X86_CPUID_POLICY:
        state.cpuPolicy = { ...state.cpuPolicy, cpuid: body };
        break;
      case LibxcRecordType.X86_MSR_POLICY:
        state.cpuPolicy = { ...state.cpuPolicy, msr: body };
        break;
      case FERRY_DOMAIN_RECORD: {
        const code = body.length >= 4 ? body.readUInt32LE(0) : 0;
        state.guestType = code === 1 ? 'hvm' : code === 2 ? 'pvh' : 'unknown';
        break;
      }
      default:
        if (!(type & LIBXC_OPTIONAL_RECORD_BIT)) throw bad(`unknown mandatory record type 0x${type.toString(16)}`);
    }
  }
  if (state.finalState.hvmContext.byteLength === 0) throw bad('it has no HVM_CONTEXT record');
  return state;
}

function bad(why: string) {
  return internal('BAD_VCPU_CONTEXT', `the xen driver's vCPU context cannot be exported: ${why}`);
}
