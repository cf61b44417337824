// Helpers for guest tests: boot a guest on a TestPlatform, wait on what it reports, and "migrate"
// it the way pre-copy does (copy memory while it runs with log-dirty on, suspend, copy the last
// dirty pages and the p2m, resume a fresh kernel from memory + vCPU context on a new platform).

import type { WorkloadSpec } from '@ferry/hypervisor';
import { createKernel, type FerryKernel, type KernelOptions } from '../../src';
import { TestPlatform } from './test-platform';

export interface WorkloadReport {
  kind: string;
  ops: number;
  errors: number;
  [k: string]: unknown;
}

export async function bootGuest(
  spec: WorkloadSpec,
  maxPages = 4096,
  options: KernelOptions = {},
  platformOptions: ConstructorParameters<typeof TestPlatform>[1] = {},
): Promise<{ platform: TestPlatform; kernel: FerryKernel }> {
  const platform = new TestPlatform(maxPages, platformOptions);
  const kernel = createKernel(options);
  await kernel.boot(platform, spec);
  return { platform, kernel };
}

export function parseReport(v: string | null): WorkloadReport | null {
  return v ? (JSON.parse(v) as WorkloadReport) : null;
}

/** Resolves with the first data/workload report that satisfies test (reports come every second). */
export async function waitForReport(platform: TestPlatform, test: (r: WorkloadReport) => boolean): Promise<WorkloadReport> {
  const v = await platform.xenstore.waitFor('data/workload', (x) => {
    const r = parseReport(x);
    return r !== null && test(r);
  });
  return parseReport(v) as WorkloadReport;
}

/** Waits for two reports with growing op counts: the workload makes progress. */
export async function waitForProgress(platform: TestPlatform, minOps = 1): Promise<WorkloadReport> {
  const first = await waitForReport(platform, (r) => r.ops >= minOps);
  return waitForReport(platform, (r) => r.ops > first.ops);
}

export function turns(n: number): Promise<void> {
  let p = Promise.resolve();
  for (let i = 0; i < n; i++) p = p.then(() => new Promise<void>((r) => setImmediate(r)));
  return p;
}

export interface MigrateOptions {
  /** Pre-copy rounds after round 0 (each CLEANs the dirty bitmap and resends). Default 2. */
  rounds?: number;
  /** Pfns to leave out of the final copy (to show a lost update is caught). */
  skipFinal?: (pfn: number) => boolean;
  /** Pfns not to copy at all (to show a missing page faults). */
  neverCopy?: (pfn: number) => boolean;
}

/**
 * Live-migrates the guest on `src` to a new platform and resumes it there with a fresh kernel.
 * The old kernel is halted. Pages are copied in chunks with event-loop turns between them, so the
 * guest keeps running (and dirtying) during the rounds, as in a real pre-copy.
 */
export async function migrate(
  src: TestPlatform,
  kernel: FerryKernel,
  options: MigrateOptions = {},
): Promise<{ platform: TestPlatform; kernel: FerryKernel; finalDirty: number }> {
  const maxPages = src.backing.maxPages;
  const dst = new TestPlatform(maxPages, { populated: false, domid: src.domid + 100 });
  const target = src.xenstore.values.get('memory/target');
  if (target !== undefined) dst.xenstore.set('memory/target', target, false);
  const neverCopy = options.neverCopy ?? (() => false);
  const copy = async (pfns: Iterable<number>): Promise<void> => {
    let n = 0;
    for (const pfn of pfns) {
      if (neverCopy(pfn)) continue;
      if (src.isPopulated(pfn)) src.copyPageTo(dst, pfn);
      else dst.setPopulated(pfn, false);
      if ((++n & 255) === 0) await turns(1);
    }
  };

  src.logDirtyEnable();
  await copy(Array.from({ length: maxPages }, (_, i) => i));
  for (let round = 0; round < (options.rounds ?? 2); round++) await copy(src.logDirtyClean());

  src.xenstore.set('control/shutdown', 'suspend', false);
  await src.whenSuspended();
  const skip = options.skipFinal ?? (() => false);
  const finalSet = src.logDirtyClean().filter((pfn) => !skip(pfn));
  for (const pfn of finalSet) {
    if (neverCopy(pfn)) continue;
    if (src.isPopulated(pfn)) src.copyPageTo(dst, pfn);
    else dst.setPopulated(pfn, false);
  }
  // The p2m travels too: ballooned pfns are absent at the destination.
  for (let pfn = 0; pfn < maxPages; pfn++) {
    if (!src.isPopulated(pfn)) dst.setPopulated(pfn, false);
    else if (!dst.isPopulated(pfn) && !neverCopy(pfn)) src.copyPageTo(dst, pfn);
  }
  src.logDirtyDisable();
  const context = kernel.saveContext();
  await kernel.halt();

  const next = createKernel();
  await next.resume(dst, context);
  return { platform: dst, kernel: next, finalDirty: finalSet.length };
}

/** Waits (polling every few ms) until cond() holds. */
export async function waitUntil(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

/** Waits until the guest has done more than `ops` operations (read from guest memory). */
export function waitForOps(kernel: FerryKernel, ops: number): Promise<void> {
  return waitUntil(() => kernel.guest !== null && kernel.guest.os.ops > ops);
}
