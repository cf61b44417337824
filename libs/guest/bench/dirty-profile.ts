// Measures how each workload dirties memory with its default parameters: the guest runs in this
// process over the unit tests' in-process platform, with log-dirty on; every second the dirty
// bitmap is CLEANed. Prints, per workload, the dirty pages of each 1 s interval and the unique
// dirty pages accumulated since the start, both as a share of guest memory, to compare with
// shared/reference/literature.md §5.
//
//   node --import tsx libs/guest/bench/dirty-profile.ts [seconds=10] [pages=65536] [kind...]

import type { WorkloadSpec } from '@ferry/hypervisor';
import { createKernel } from '../src';
import { TestPlatform } from '../test/support/test-platform';

const FREE_FRACTION: Record<WorkloadSpec['kind'], number> = { kv: 0.6, web: 0.5, db: 0.2, compile: 0.4, memtest: 0.5, idle: 0.9 };

async function profile(kind: WorkloadSpec['kind'], seconds: number, pages: number): Promise<void> {
  const platform = new TestPlatform(pages, { quiet: true });
  const kernel = createKernel();
  const spec: WorkloadSpec = { kind, seed: 1, freeFraction: FREE_FRACTION[kind] };
  await kernel.boot(platform, spec);
  const guest = kernel.guest!;
  const seen = new Uint8Array(pages);
  let unique = 0;
  const perSecond: string[] = [];
  const cumulative: string[] = [];
  platform.logDirtyEnable();
  const opsStart = guest.os.ops;
  const t0 = performance.now();
  for (let s = 1; s <= seconds; s++) {
    await new Promise((r) => setTimeout(r, t0 + s * 1000 - performance.now()));
    const dirty = platform.logDirtyClean();
    for (const pfn of dirty) {
      if (seen[pfn]) continue;
      seen[pfn] = 1;
      unique++;
    }
    perSecond.push(((100 * dirty.length) / pages).toFixed(2));
    cumulative.push(((100 * unique) / pages).toFixed(2));
  }
  const ops = guest.os.ops - opsStart;
  console.log(
    JSON.stringify({
      kind,
      pages,
      freeFraction: spec.freeFraction,
      rate: guest.workload.rate || 'unthrottled',
      ops_per_s: Math.round(ops / seconds),
      dirty_pct_per_1s_interval: perSecond.join(' '),
      unique_dirty_pct_cumulative: cumulative.join(' '),
      errors: guest.os.errors,
    }),
  );
  await kernel.halt();
}

async function main(): Promise<void> {
  const [secondsArg, pagesArg, ...kinds] = process.argv.slice(2);
  const seconds = Number(secondsArg ?? 10);
  const pages = Number(pagesArg ?? 65536);
  const list = (kinds.length > 0 ? kinds : ['kv', 'web', 'db', 'compile', 'memtest', 'idle']) as WorkloadSpec['kind'][];
  for (const kind of list) await profile(kind, seconds, pages);
}

void main();
