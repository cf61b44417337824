// Numbers from Xen 4.17's public headers (xen/domctl.h, xen/sched.h, xen/arch-x86/xen.h,
// xen/hvm/params.h) that the TypeScript half needs. The addon passes raw values through; these
// give them meaning.

/** XEN_DOMCTL_shadow_op operations. */
export const ShadowOp = {
  OFF: 0,
  ENABLE_LOGDIRTY: 2,
  CLEAN: 11,
  PEEK: 12,
} as const;

/** getdomaininfo flags (XEN_DOMINF_*). The shutdown reason sits in bits 16..23. */
export const DomInfoFlag = {
  DYING: 1 << 0,
  HVM_GUEST: 1 << 1,
  SHUTDOWN: 1 << 2,
  PAUSED: 1 << 3,
  BLOCKED: 1 << 4,
  RUNNING: 1 << 5,
  DEBUGGED: 1 << 6,
  XS_DOMAIN: 1 << 7,
  HAP: 1 << 8,
} as const;
export const SHUTDOWN_REASON_SHIFT = 16;
export const SHUTDOWN_REASON_MASK = 0xff;

/** SHUTDOWN_* codes (xen/sched.h). */
export const ShutdownCode = {
  POWEROFF: 0,
  REBOOT: 1,
  SUSPEND: 2,
  CRASH: 3,
  WATCHDOG: 4,
  SOFT_RESET: 5,
} as const;

/** XEN_X86_EMU_LAPIC: the only emulated device of a PVH domain (libxl creates PVH with just it). */
export const X86_EMU_LAPIC = 1 << 0;

/** XEN_DOMCTL_PFINFO_* page types, as the top nibble the addon returns (type >> 28). */
export const PageType = {
  NOTAB: 0x0,
  L1TAB: 0x1,
  L2TAB: 0x2,
  L3TAB: 0x3,
  L4TAB: 0x4,
  BROKEN: 0xd,
  XALLOC: 0xe,
  /** Not populated (a hole, a ballooned-out page) or otherwise invalid. */
  XTAB: 0xf,
} as const;

/**
 * The HVM params a restore needs, Xen's own list (write_hvm_params in xg_sr_save_x86_hvm.c):
 * the special pages (xenstore, console, ioreq, rings), ACPI/viridian settings, identity page table,
 * VM generation id, ioreq server pages, FIP width and MCA capabilities. Zero-valued params are not
 * recorded, as Xen does.
 */
export const RESTORE_HVM_PARAMS: readonly number[] = [
  1, // HVM_PARAM_STORE_PFN
  5, // HVM_PARAM_IOREQ_PFN
  6, // HVM_PARAM_BUFIOREQ_PFN
  27, // HVM_PARAM_PAGING_RING_PFN
  28, // HVM_PARAM_MONITOR_RING_PFN
  29, // HVM_PARAM_SHARING_RING_PFN
  37, // HVM_PARAM_VM86_TSS_SIZED
  17, // HVM_PARAM_CONSOLE_PFN
  19, // HVM_PARAM_ACPI_IOPORTS_LOCATION
  9, // HVM_PARAM_VIRIDIAN
  12, // HVM_PARAM_IDENT_PT
  34, // HVM_PARAM_VM_GENERATION_ID_ADDR
  32, // HVM_PARAM_IOREQ_SERVER_PFN
  33, // HVM_PARAM_NR_IOREQ_SERVER_PAGES
  36, // HVM_PARAM_X87_FIP_WIDTH
  38, // HVM_PARAM_MCA_CAP
];

/** The device through which dom0 makes hypercalls; its absence means "not a Xen dom0". */
export const PRIVCMD_PATH = '/dev/xen/privcmd';
/** The header whose presence decides whether the addon is built (scripts/build-addon.js). */
export const XENCTRL_HEADER = '/usr/include/xenctrl.h';
