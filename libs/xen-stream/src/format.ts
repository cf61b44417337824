// The numbers of Xen's migration stream, as Xen 4.17 defines them:
// - the xl save-file header (tools/xl/xl.h),
// - the libxl stream v2 (docs/specs/libxl-migration-stream.pandoc),
// - the libxc stream v3 (docs/specs/libxc-migration-stream.pandoc, xg_sr_stream_format.h).
// Xen's own verifier (verify-stream-v2, tools/python/xen/migration) checks exactly these.

/** Which layers of the stream, outermost first: 'xl' is what `xl save` writes. */
export type StreamLayers = 'xl' | 'libxl' | 'libxc';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Xen's MAX_BATCH_SIZE: a saver never puts more pfns than this in one PAGE_DATA record. */
export const MAX_PAGE_DATA_PFNS = 1024;
/** Records are padded with zeroes to a multiple of this many bytes. */
export const RECORD_ALIGN = 8;
export const RECORD_HEADER_BYTES = 8;

// ---- xl save-file header (little-endian on x86, "the domain's byte order") ----------------

/** 32 bytes: the text, a newline, a space, a NUL, a space and a carriage return. */
export const XL_MAGIC = Buffer.from('Xen saved domain, xl format\n \0 \r', 'latin1');
export const XL_BYTEORDER = 0x01020304;
/** magic[32], byteorder, mandatory_flags, optional_flags, optional_data_len. */
export const XL_HEADER_BYTES = 48;
/** The optional data is the config, in libxl's JSON. */
export const XL_MANDATORY_FLAG_JSON = 1 << 0;
/** The stream after the header is libxl's stream v2 (not a legacy stream). */
export const XL_MANDATORY_FLAG_STREAMV2 = 1 << 1;
export const XL_MANDATORY_FLAGS_KNOWN = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;

// ---- libxl stream v2 (header big-endian, records in the stream's endianness) ---------------

/** "LibxlFmt" in ASCII. */
export const LIBXL_IDENT = 0x4c6962786c466d74n;
export const LIBXL_VERSION = 2;
/** ident u64, version u32, options u32. */
export const LIBXL_HEADER_BYTES = 16;
export const LIBXL_OPTION_BIG_ENDIAN = 1 << 0;
export const LIBXL_OPTION_LEGACY = 1 << 1;

export const LibxlRecordType = {
  END: 0x0,
  /** Empty; the libxc stream follows inline, up to and including its END record. */
  LIBXC_CONTEXT: 0x1,
  EMULATOR_XENSTORE_DATA: 0x2,
  EMULATOR_CONTEXT: 0x3,
  CHECKPOINT_END: 0x4,
  CHECKPOINT_STATE: 0x5,
} as const;

export const LIBXL_RECORD_NAMES: Record<number, string> = {
  0x0: 'END',
  0x1: 'LIBXC_CONTEXT',
  0x2: 'EMULATOR_XENSTORE_DATA',
  0x3: 'EMULATOR_CONTEXT',
  0x4: 'CHECKPOINT_END',
  0x5: 'CHECKPOINT_STATE',
};

// ---- libxc stream v3 (image header big-endian, the rest in the stream's endianness) ---------

export const LIBXC_MARKER = 0xffffffffffffffffn;
/** "XENF" in ASCII. */
export const LIBXC_IDENT = 0x58454e46;
export const LIBXC_VERSION = 3;
/** marker u64, id u32, version u32, options u16, reserved u16, reserved u32. */
export const LIBXC_IMAGE_HEADER_BYTES = 24;
export const LIBXC_OPTION_BIG_ENDIAN = 1 << 0;
/** type u32, page_shift u16, reserved u16, xen_major u32, xen_minor u32. */
export const LIBXC_DOMAIN_HEADER_BYTES = 16;

export const LibxcDomainType = {
  X86_PV: 1,
  /** HVM and PVH guests alike. */
  X86_HVM: 2,
} as const;

export const LibxcRecordType = {
  END: 0x00,
  PAGE_DATA: 0x01,
  X86_PV_INFO: 0x02,
  X86_PV_P2M_FRAMES: 0x03,
  X86_PV_VCPU_BASIC: 0x04,
  X86_PV_VCPU_EXTENDED: 0x05,
  X86_PV_VCPU_XSAVE: 0x06,
  SHARED_INFO: 0x07,
  X86_TSC_INFO: 0x08,
  HVM_CONTEXT: 0x09,
  HVM_PARAMS: 0x0a,
  TOOLSTACK: 0x0b,
  X86_PV_VCPU_MSRS: 0x0c,
  VERIFY: 0x0d,
  CHECKPOINT: 0x0e,
  CHECKPOINT_DIRTY_PFN_LIST: 0x0f,
  STATIC_DATA_END: 0x10,
  X86_CPUID_POLICY: 0x11,
  X86_MSR_POLICY: 0x12,
} as const;

export const LIBXC_RECORD_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(LibxcRecordType).map(([name, value]) => [value, name]),
);

/** Records with bit 31 set are optional: a restore may ignore them (stock Xen's verifier does not know any). */
export const LIBXC_OPTIONAL_RECORD_BIT = 0x8000_0000;

// ---- PAGE_DATA pfn entries: bits 63-60 type, 59-52 reserved, 51-0 pfn ------------------------

export const PFN_BITS = 52;
export const MAX_PFN = 2 ** PFN_BITS - 1;

/** XEN_DOMCTL_PFINFO_* >> 28: the 4-bit type in bits 63-60 of a pfn entry. */
export const PageType = {
  NOTAB: 0x0,
  L1TAB: 0x1,
  L2TAB: 0x2,
  L3TAB: 0x3,
  L4TAB: 0x4,
  L1TAB_PINNED: 0x9,
  L2TAB_PINNED: 0xa,
  L3TAB_PINNED: 0xb,
  L4TAB_PINNED: 0xc,
  BROKEN: 0xd,
  /** Allocate only: no data. */
  XALLOC: 0xe,
  /** Not populated (ballooned out, or never populated): no data. */
  XTAB: 0xf,
} as const;

export type PageTypeCode = (typeof PageType)[keyof typeof PageType];

/** Types 5-8 do not exist. */
export function isKnownPageType(type: number): boolean {
  return Number.isInteger(type) && type >= 0 && type <= 0xf && !(type >= 5 && type <= 8);
}

/** Data follows for normal pages and page tables (pinned or not); not for BROKEN, XALLOC, XTAB. */
export function pageTypeHasData(type: number): boolean {
  return (type & 0x7) <= 0x4;
}

// ---- HVM_CONTEXT contents: Xen's HVM save image (xen/include/public/arch-x86/hvm/save.h) ----

export const HVM_FILE_MAGIC = 0x54381286;
export const HVM_FILE_VERSION = 1;
/** hvm_save_descriptor: typecode u16, instance u16, length u32. */
export const HVM_DESCRIPTOR_BYTES = 8;
export const HVM_SAVE_CODE_END = 0;
export const HVM_SAVE_CODE_HEADER = 1;
/** hvm_save_header: magic u32, version u32, changeset u64, cpuid u32, gtsc_khz u32. */
export const HVM_SAVE_HEADER_BYTES = 24;

/** X86_CPUID_POLICY is an array of xen_cpuid_leaf_t: leaf, subleaf, eax, ebx, ecx, edx (u32 each). */
export const CPUID_LEAF_BYTES = 24;
/** X86_MSR_POLICY is an array of xen_msr_entry_t: idx u32, flags u32, val u64. */
export const MSR_ENTRY_BYTES = 16;

/** X86_TSC_INFO: mode u32, khz u32, nsec u64, incarnation u32, reserved u32. */
export const TSC_INFO_BYTES = 24;
