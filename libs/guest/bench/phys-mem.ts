// Throughput of the guest's store path (PhysMem.write32): one word per page, striding over 256 MiB
// (so every store misses the CPU caches, the worst case), with log-dirty off and on.
//   node --import tsx libs/guest/bench/phys-mem.ts

import { PhysMem } from '../src';
import { TestPlatform } from '../test/support/test-platform';

const PAGES = 65536;

function pass(mem: PhysMem, writes: number): number {
  const t0 = performance.now();
  let pfn = 0;
  for (let i = 0; i < writes; i++) {
    mem.write32(pfn, i & 1023, i);
    pfn = pfn + 1 === PAGES ? 0 : pfn + 1;
  }
  return performance.now() - t0;
}

function report(label: string, ms: number, writes: number): void {
  console.log(`${label}: ${((ms * 1e6) / writes).toFixed(1)} ns/store, ${(writes / ms / 1000).toFixed(1)} M stores/s`);
}

const platform = new TestPlatform(PAGES, { quiet: true });
const mem = new PhysMem(platform.backing);
const writes = 20_000_000;
pass(mem, writes); // warm-up (JIT)
report('log-dirty off', pass(mem, writes), writes);
platform.logDirtyEnable();
report('log-dirty on, page already dirty', pass(mem, writes), writes);
let ms = 0;
for (let round = 0; round < 50; round++) {
  platform.logDirtyClean();
  ms += pass(mem, PAGES);
}
report('log-dirty on, first store to a page since CLEAN (Atomics.or + fault count)', ms, 50 * PAGES);
