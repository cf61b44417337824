// HVM_CONTEXT's contents: Xen's HVM save image, what XEN_DOMCTL_gethvmcontext returns and
// XEN_DOMCTL_sethvmcontext loads (xen/include/public/hvm/save.h, arch-x86/hvm/save.h).
//
// A sequence of entries, each an 8-byte descriptor {u16 typecode, u16 instance, u32 length}
// and `length` bytes; the HEADER entry (typecode 1: magic 0x54381286, version 1, changeset,
// cpuid, gtsc_khz) comes first and an END descriptor (typecode 0, length 0) closes it.
//
// Xen's hvm_load first marks every vCPU down and brings up only the vCPUs whose CPU entry is in
// the image. So an image of just HEADER and END is well formed and loads, and leaves every vCPU
// down: that is what Ferry writes for an emulated domain, whose vCPU state is not x86 state.

import {
  HVM_DESCRIPTOR_BYTES,
  HVM_FILE_MAGIC,
  HVM_FILE_VERSION,
  HVM_SAVE_CODE_END,
  HVM_SAVE_CODE_HEADER,
  HVM_SAVE_HEADER_BYTES,
} from './format';

export interface HvmSaveEntry {
  typecode: number;
  instance: number;
  length: number;
}

export type HvmImageCheck = { ok: true; entries: HvmSaveEntry[] } | { ok: false; problem: string };

/** HEADER + END: loads on a real Xen and brings no vCPU up. */
export function minimalHvmContext(opts: { cpuid?: number; gtscKhz?: number } = {}): Buffer {
  const b = Buffer.alloc(HVM_DESCRIPTOR_BYTES + HVM_SAVE_HEADER_BYTES + HVM_DESCRIPTOR_BYTES);
  b.writeUInt16LE(HVM_SAVE_CODE_HEADER, 0);
  b.writeUInt16LE(0, 2);
  b.writeUInt32LE(HVM_SAVE_HEADER_BYTES, 4);
  b.writeUInt32LE(HVM_FILE_MAGIC, 8);
  b.writeUInt32LE(HVM_FILE_VERSION, 12);
  b.writeBigUInt64LE(0n, 16); // changeset: not a Xen build
  b.writeUInt32LE(opts.cpuid ?? 0, 24);
  b.writeUInt32LE(opts.gtscKhz ?? 0, 28);
  // The END descriptor is the 8 zero bytes left at the end.
  return b;
}

/** Walks an HVM save image as Xen's hvm_load would: HEADER first with the right magic and version, then entries up to END. */
export function checkHvmSaveImage(blob: Uint8Array): HvmImageCheck {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const entries: HvmSaveEntry[] = [];
  let at = 0;
  for (;;) {
    if (b.length - at < HVM_DESCRIPTOR_BYTES) return { ok: false, problem: `no END descriptor (image ends at byte ${at})` };
    const entry = { typecode: b.readUInt16LE(at), instance: b.readUInt16LE(at + 2), length: b.readUInt32LE(at + 4) };
    at += HVM_DESCRIPTOR_BYTES;
    if (entries.length === 0) {
      if (entry.typecode !== HVM_SAVE_CODE_HEADER || entry.length !== HVM_SAVE_HEADER_BYTES) return { ok: false, problem: 'the first entry is not the HVM save HEADER' };
      if (b.length - at < HVM_SAVE_HEADER_BYTES) return { ok: false, problem: 'the HEADER entry is truncated' };
      if (b.readUInt32LE(at) !== HVM_FILE_MAGIC) return { ok: false, problem: `bad HVM save magic 0x${b.readUInt32LE(at).toString(16)}` };
      if (b.readUInt32LE(at + 4) !== HVM_FILE_VERSION) return { ok: false, problem: `HVM save version ${b.readUInt32LE(at + 4)}, expected ${HVM_FILE_VERSION}` };
    }
    entries.push(entry);
    if (entry.typecode === HVM_SAVE_CODE_END) return { ok: true, entries };
    if (b.length - at < entry.length) return { ok: false, problem: `entry ${entry.typecode}/${entry.instance} of ${entry.length} bytes is truncated` };
    at += entry.length;
  }
}
