// The opaque vCPU/device state of a Xen domain (HypervisorDriver.getVcpuContext) as one blob:
// everything a restore needs besides memory. It is framed like Xen's own migration stream (libxc
// stream v3, xen.md §2.2) so that a writer of Xen's stream (libs/xen-stream) can emit each record
// as it is:
//
//   header   "FERRYXEN" (8 bytes), version u32 = 1, record count u32
//   records  { type u32, body_length u32, body, zero padding to a multiple of 8 }, little-endian
//
// Record types are Xen's where Xen has one, with Xen's body layouts:
//   0x08 X86_TSC_INFO      { mode u32, khz u32, nsec u64, incarnation u32, reserved u32 }
//   0x09 HVM_CONTEXT       the blob of xc_domain_hvm_getcontext
//   0x0A HVM_PARAMS        { count u32, reserved u32, { index u64, value u64 } × count }
//   0x11 X86_CPUID_POLICY  xen_cpuid_leaf_t × n (24 bytes each)
//   0x12 X86_MSR_POLICY    xen_msr_entry_t × n (16 bytes each)
// plus Ferry's own (bit 31 set: optional, as in Xen's stream):
//   0x80000001 FERRY_DOMAIN { guest type u32 (1 HVM, 2 PVH), vcpus u32, p2m size u64, xen major u32, xen minor u32 }
// A reader refuses unknown records without bit 31 and skips unknown ones with it.

import { HypervisorError } from '@ferry/hypervisor';

export const CONTEXT_MAGIC = 'FERRYXEN';
export const CONTEXT_VERSION = 1;
const HEADER_BYTES = 16;
const RECORD_HEADER_BYTES = 8;

export const ContextRecord = {
  X86_TSC_INFO: 0x08,
  HVM_CONTEXT: 0x09,
  HVM_PARAMS: 0x0a,
  X86_CPUID_POLICY: 0x11,
  X86_MSR_POLICY: 0x12,
  FERRY_DOMAIN: 0x80000001,
} as const;
/** Records with this bit may be skipped by a reader that does not know them. */
export const OPTIONAL_RECORD_BIT = 0x80000000;

export const CPUID_LEAF_BYTES = 24;
export const MSR_ENTRY_BYTES = 16;

export interface XenDomainFacts {
  guestType: 'hvm' | 'pvh';
  vcpus: number;
  /** xc_domain_nr_gpfns at the time of the snapshot. */
  p2mSize: number;
  xenMajor: number;
  xenMinor: number;
}

export interface XenTscInfo {
  mode: number;
  khz: number;
  elapsedNsec: bigint;
  incarnation: number;
}

export interface XenVcpuContext {
  domain: XenDomainFacts;
  tsc: XenTscInfo;
  hvmParams: { index: number; value: bigint }[];
  hvmContext: Uint8Array;
  cpuidPolicy: Uint8Array;
  msrPolicy: Uint8Array;
}

export interface ContextRecordView {
  type: number;
  body: Uint8Array;
}

const GUEST_TYPE_CODE = { hvm: 1, pvh: 2 } as const;

export function packVcpuContext(context: XenVcpuContext): Uint8Array {
  if (context.cpuidPolicy.byteLength % CPUID_LEAF_BYTES !== 0 || context.msrPolicy.byteLength % MSR_ENTRY_BYTES !== 0) {
    throw new HypervisorError('EINVAL', 'CPU policies must be whole xen_cpuid_leaf_t (24 bytes) and xen_msr_entry_t (16 bytes) entries');
  }
  // Xen's saver order: static data (policies), then TSC, HVM context, HVM params.
  const records: ContextRecordView[] = [
    { type: ContextRecord.FERRY_DOMAIN, body: encodeDomain(context.domain) },
    { type: ContextRecord.X86_CPUID_POLICY, body: context.cpuidPolicy },
    { type: ContextRecord.X86_MSR_POLICY, body: context.msrPolicy },
    { type: ContextRecord.X86_TSC_INFO, body: encodeTsc(context.tsc) },
    { type: ContextRecord.HVM_CONTEXT, body: context.hvmContext },
  ];
  if (context.hvmParams.length > 0) records.push({ type: ContextRecord.HVM_PARAMS, body: encodeHvmParams(context.hvmParams) });

  const size = records.reduce((n, r) => n + RECORD_HEADER_BYTES + padded(r.body.byteLength), HEADER_BYTES);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(CONTEXT_MAGIC, 'latin1'), 0);
  view.setUint32(8, CONTEXT_VERSION, true);
  view.setUint32(12, records.length, true);
  let at = HEADER_BYTES;
  for (const r of records) {
    view.setUint32(at, r.type, true);
    view.setUint32(at + 4, r.body.byteLength, true);
    out.set(r.body, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + padded(r.body.byteLength);
  }
  return out;
}

/** The records of a blob in order, bodies as views into it. Throws HypervisorError('EINVAL') on a malformed blob. */
export function contextRecords(blob: Uint8Array): ContextRecordView[] {
  if (blob.byteLength < HEADER_BYTES || Buffer.from(blob.buffer, blob.byteOffset, 8).toString('latin1') !== CONTEXT_MAGIC) {
    throw bad(`it does not start with the ${CONTEXT_MAGIC} header; was it made by the xen driver?`);
  }
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const version = view.getUint32(8, true);
  if (version !== CONTEXT_VERSION) throw bad(`version ${version} is not the supported ${CONTEXT_VERSION}`);
  const count = view.getUint32(12, true);
  const records: ContextRecordView[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + RECORD_HEADER_BYTES > blob.byteLength) throw bad(`record ${i} of ${count} is missing (the blob ends at ${blob.byteLength} bytes)`);
    const type = view.getUint32(at, true);
    const length = view.getUint32(at + 4, true);
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > blob.byteLength) throw bad(`record ${i} (type ${hex(type)}) claims ${length} bytes past the end of the blob`);
    records.push({ type, body: blob.subarray(at + RECORD_HEADER_BYTES, end) });
    at += RECORD_HEADER_BYTES + padded(length);
  }
  if (at !== blob.byteLength) throw bad(`${blob.byteLength - at} bytes follow the last record`);
  return records;
}

export function unpackVcpuContext(blob: Uint8Array): XenVcpuContext {
  let domain: XenDomainFacts | undefined;
  let tsc: XenTscInfo | undefined;
  let hvmContext: Uint8Array | undefined;
  let hvmParams: XenVcpuContext['hvmParams'] = [];
  let cpuidPolicy = new Uint8Array(0);
  let msrPolicy = new Uint8Array(0);
  for (const { type, body } of contextRecords(blob)) {
    switch (type) {
      case ContextRecord.FERRY_DOMAIN:
        domain = decodeDomain(body);
        break;
      case ContextRecord.X86_TSC_INFO:
        tsc = decodeTsc(body);
        break;
      case ContextRecord.HVM_CONTEXT:
        hvmContext = new Uint8Array(body);
        break;
      case ContextRecord.HVM_PARAMS:
        hvmParams = decodeHvmParams(body);
        break;
      case ContextRecord.X86_CPUID_POLICY:
        if (body.byteLength % CPUID_LEAF_BYTES !== 0) throw bad(`the CPUID policy is ${body.byteLength} bytes, not whole 24-byte leaves`);
        cpuidPolicy = new Uint8Array(body);
        break;
      case ContextRecord.X86_MSR_POLICY:
        if (body.byteLength % MSR_ENTRY_BYTES !== 0) throw bad(`the MSR policy is ${body.byteLength} bytes, not whole 16-byte entries`);
        msrPolicy = new Uint8Array(body);
        break;
      default:
        if ((type & OPTIONAL_RECORD_BIT) === 0) throw bad(`unknown mandatory record type ${hex(type)}`);
    }
  }
  if (!domain) throw bad('the FERRY_DOMAIN record is missing');
  if (!tsc) throw bad('the X86_TSC_INFO record is missing');
  if (!hvmContext) throw bad('the HVM_CONTEXT record is missing');
  return { domain, tsc, hvmParams, hvmContext, cpuidPolicy, msrPolicy };
}

function encodeDomain(d: XenDomainFacts): Uint8Array {
  const body = new Uint8Array(24);
  const v = new DataView(body.buffer);
  v.setUint32(0, GUEST_TYPE_CODE[d.guestType], true);
  v.setUint32(4, d.vcpus, true);
  v.setBigUint64(8, BigInt(d.p2mSize), true);
  v.setUint32(16, d.xenMajor, true);
  v.setUint32(20, d.xenMinor, true);
  return body;
}

function decodeDomain(body: Uint8Array): XenDomainFacts {
  if (body.byteLength !== 24) throw bad(`the FERRY_DOMAIN record is ${body.byteLength} bytes, not 24`);
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const code = v.getUint32(0, true);
  const guestType = code === GUEST_TYPE_CODE.hvm ? 'hvm' : code === GUEST_TYPE_CODE.pvh ? 'pvh' : undefined;
  if (!guestType) throw bad(`guest type ${code} is neither HVM (1) nor PVH (2)`);
  return {
    guestType,
    vcpus: v.getUint32(4, true),
    p2mSize: Number(v.getBigUint64(8, true)),
    xenMajor: v.getUint32(16, true),
    xenMinor: v.getUint32(20, true),
  };
}

function encodeTsc(t: XenTscInfo): Uint8Array {
  const body = new Uint8Array(24);
  const v = new DataView(body.buffer);
  v.setUint32(0, t.mode, true);
  v.setUint32(4, t.khz, true);
  v.setBigUint64(8, t.elapsedNsec, true);
  v.setUint32(16, t.incarnation, true);
  return body;
}

function decodeTsc(body: Uint8Array): XenTscInfo {
  if (body.byteLength !== 24) throw bad(`the X86_TSC_INFO record is ${body.byteLength} bytes, not 24`);
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { mode: v.getUint32(0, true), khz: v.getUint32(4, true), elapsedNsec: v.getBigUint64(8, true), incarnation: v.getUint32(16, true) };
}

function encodeHvmParams(params: XenVcpuContext['hvmParams']): Uint8Array {
  const body = new Uint8Array(8 + params.length * 16);
  const v = new DataView(body.buffer);
  v.setUint32(0, params.length, true);
  params.forEach((p, i) => {
    v.setBigUint64(8 + i * 16, BigInt(p.index), true);
    v.setBigUint64(16 + i * 16, p.value, true);
  });
  return body;
}

function decodeHvmParams(body: Uint8Array): XenVcpuContext['hvmParams'] {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const count = body.byteLength >= 8 ? v.getUint32(0, true) : -1;
  if (count < 0 || body.byteLength !== 8 + count * 16) throw bad(`the HVM_PARAMS record is ${body.byteLength} bytes, not 8 + 16 per param`);
  const params: XenVcpuContext['hvmParams'] = [];
  for (let i = 0; i < count; i++) {
    const index = v.getBigUint64(8 + i * 16, true);
    if (index > 0xffffffffn) throw bad(`HVM param index ${index} does not fit 32 bits`);
    params.push({ index: Number(index), value: v.getBigUint64(16 + i * 16, true) });
  }
  return params;
}

function padded(length: number): number {
  return Math.ceil(length / 8) * 8;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function bad(why: string): HypervisorError {
  return new HypervisorError('EINVAL', `not a usable Xen vCPU context: ${why}`);
}
