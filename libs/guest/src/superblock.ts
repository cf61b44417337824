// Writing the kernel's layout into fresh guest memory at first boot, and finding it again (with
// checks) when a guest is resumed from its memory.

import type { WorkloadSpec } from '@ferry/hypervisor';
import {
  KERNEL_STATE_PFN,
  KS,
  LAYOUT_VERSION,
  planKernelLayout,
  SB,
  SPEC_JSON_BYTE_OFFSET,
  SPEC_JSON_MAX_BYTES,
  SUPERBLOCK_MAGIC,
  SUPERBLOCK_PFN,
  WORKLOAD_KINDS,
  type KernelLayout,
} from './layout';
import { GuestFault, type PhysMem } from './phys-mem';

/** Lays out the superblock and kernel state page. The allocator and balloon list format their own pages. */
export function writeSuperblock(mem: PhysMem, spec: WorkloadSpec, bootTimeMs: number): KernelLayout {
  const layout = planKernelLayout(mem.maxPages);
  if (layout.reservedEnd + 16 > mem.maxPages) {
    throw new Error(`a guest of ${mem.maxPages} pages is too small: the kernel alone needs ${layout.reservedEnd}`);
  }
  for (let pfn = 0; pfn < layout.reservedEnd; pfn++) {
    if (!mem.isPopulated(pfn)) throw new GuestFault(pfn, `kernel page ${pfn} is not populated at boot`);
  }
  const kindCode = WORKLOAD_KINDS.indexOf(spec.kind);
  if (kindCode < 0) throw new Error(`unknown workload kind "${spec.kind}"`);
  const json = new TextEncoder().encode(JSON.stringify(spec));
  if (json.length > SPEC_JSON_MAX_BYTES) throw new Error('workload spec too large for the superblock');

  mem.zeroPage(SUPERBLOCK_PFN);
  mem.zeroPage(KERNEL_STATE_PFN);
  mem.write32(SUPERBLOCK_PFN, SB.MAGIC, SUPERBLOCK_MAGIC);
  mem.write32(SUPERBLOCK_PFN, SB.VERSION, LAYOUT_VERSION);
  mem.write32(SUPERBLOCK_PFN, SB.MAX_PAGES, layout.maxPages);
  mem.write32(SUPERBLOCK_PFN, SB.BITMAP_PFN, layout.bitmapPfn);
  mem.write32(SUPERBLOCK_PFN, SB.BITMAP_PAGES, layout.bitmapPages);
  mem.write32(SUPERBLOCK_PFN, SB.BALLOON_LIST_PFN, layout.balloonListPfn);
  mem.write32(SUPERBLOCK_PFN, SB.BALLOON_LIST_PAGES, layout.balloonListPages);
  mem.write32(SUPERBLOCK_PFN, SB.RESERVED_END, layout.reservedEnd);
  mem.write32(SUPERBLOCK_PFN, SB.WORKLOAD_KIND, kindCode);
  mem.write32(SUPERBLOCK_PFN, SB.SEED, spec.seed >>> 0);
  mem.write64(SUPERBLOCK_PFN, SB.BOOT_TIME_MS, bootTimeMs);
  mem.write32(SUPERBLOCK_PFN, SB.SPEC_JSON_LENGTH, json.length);
  mem.writeBytes(SUPERBLOCK_PFN, SPEC_JSON_BYTE_OFFSET, json, 0, json.length);
  return layout;
}

export function setWorkloadRoot(mem: PhysMem, rootPfn: number): void {
  mem.write32(SUPERBLOCK_PFN, SB.WORKLOAD_ROOT_PFN, rootPfn);
  mem.write32(KERNEL_STATE_PFN, KS.BOOTED, 1);
}

export interface FoundSuperblock {
  layout: KernelLayout;
  spec: WorkloadSpec;
  workloadRootPfn: number;
}

/** Reads and checks the superblock of a guest being resumed. Throws with the reason when it is not usable. */
export function readSuperblock(mem: PhysMem, superblockPfn: number): FoundSuperblock {
  if (superblockPfn !== SUPERBLOCK_PFN) throw new Error(`vCPU context points at superblock pfn ${superblockPfn}, expected ${SUPERBLOCK_PFN}`);
  if (!mem.isPopulated(SUPERBLOCK_PFN)) throw new Error('the superblock page (pfn 0) is not populated: guest memory was not restored');
  const magic = mem.readU32(SUPERBLOCK_PFN, SB.MAGIC);
  if (magic !== SUPERBLOCK_MAGIC) throw new Error(`bad superblock magic 0x${magic.toString(16)}: not a Ferry guest, or memory was not restored`);
  const version = mem.read32(SUPERBLOCK_PFN, SB.VERSION);
  if (version !== LAYOUT_VERSION) throw new Error(`guest memory layout version ${version}, this kernel understands ${LAYOUT_VERSION}`);
  const maxPages = mem.read32(SUPERBLOCK_PFN, SB.MAX_PAGES);
  if (maxPages !== mem.maxPages) throw new Error(`guest was built for ${maxPages} pages, the domain has ${mem.maxPages}`);
  const layout = planKernelLayout(maxPages);
  if (
    mem.read32(SUPERBLOCK_PFN, SB.BITMAP_PFN) !== layout.bitmapPfn ||
    mem.read32(SUPERBLOCK_PFN, SB.BITMAP_PAGES) !== layout.bitmapPages ||
    mem.read32(SUPERBLOCK_PFN, SB.BALLOON_LIST_PFN) !== layout.balloonListPfn ||
    mem.read32(SUPERBLOCK_PFN, SB.BALLOON_LIST_PAGES) !== layout.balloonListPages ||
    mem.read32(SUPERBLOCK_PFN, SB.RESERVED_END) !== layout.reservedEnd
  ) {
    throw new Error('superblock layout fields disagree with this kernel');
  }
  if (mem.read32(KERNEL_STATE_PFN, KS.BOOTED) !== 1) throw new Error('guest had not finished booting when it was saved');
  const length = mem.read32(SUPERBLOCK_PFN, SB.SPEC_JSON_LENGTH);
  if (length <= 0 || length > SPEC_JSON_MAX_BYTES) throw new Error(`superblock spec length ${length} is out of range`);
  const bytes = new Uint8Array(length);
  mem.readBytes(SUPERBLOCK_PFN, SPEC_JSON_BYTE_OFFSET, bytes, 0, length);
  let spec: WorkloadSpec;
  try {
    spec = JSON.parse(new TextDecoder().decode(bytes)) as WorkloadSpec;
  } catch (err) {
    throw new Error(`superblock workload spec is not JSON: ${(err as Error).message}`);
  }
  if (WORKLOAD_KINDS.indexOf(spec.kind) !== mem.read32(SUPERBLOCK_PFN, SB.WORKLOAD_KIND)) {
    throw new Error('superblock workload kind disagrees with its spec');
  }
  return { layout, spec, workloadRootPfn: mem.read32(SUPERBLOCK_PFN, SB.WORKLOAD_ROOT_PFN) };
}
