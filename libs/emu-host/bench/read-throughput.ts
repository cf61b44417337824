// Benchmark (not a test): how fast a dom0 process reads a domain's pages through the emulated
// driver (mapForeignPages, 1024-page batches, over shared memory), and how many page writes per
// second the memtest guest reaches.
//
//   node --import tsx libs/emu-host/bench/read-throughput.ts [--memory 1GiB] [--memtest-memory 256MiB] [--seconds 5] [--json]
//
// 1. A restore domain of --memory is filled with writePages (write throughput), then read back in
//    1024-page batches: sequentially twice (cold: this process maps the pages for the first time;
//    warm) and in random batch order.
// 2. A memtest guest (unthrottled, sequential) runs for --seconds with log-dirty on: its page
//    writes per second (from its own counter), the dirty pages per second CLEAN reports, and one
//    sequential read of all its pages while it writes.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  MAX_BATCH_PAGES,
  PAGE_SIZE,
  bitmapPfns,
  connectEmulatedDriver,
  xsPaths,
  type EmulatedDriver,
} from '@ferry/hypervisor';
import { parseByteSize, spawnEmuHost } from '../src/index';

interface Pass {
  pages: number;
  seconds: number;
  gb_per_s: number;
}

function pass(pages: number, ms: number): Pass {
  const seconds = ms / 1000;
  return { pages, seconds: Math.round(seconds * 1000) / 1000, gb_per_s: Math.round(((pages * PAGE_SIZE) / seconds / 1e9) * 100) / 100 };
}

async function readAll(driver: EmulatedDriver, domid: number, pfns: number[], batchOrder?: number[]): Promise<Pass> {
  const batches = Math.ceil(pfns.length / MAX_BATCH_PAGES);
  const order = batchOrder ?? Array.from({ length: batches }, (_, i) => i);
  let checksum = 0;
  const started = performance.now();
  for (const b of order) {
    const batch = pfns.slice(b * MAX_BATCH_PAGES, (b + 1) * MAX_BATCH_PAGES);
    const pages = await driver.mapForeignPages(domid, batch);
    checksum ^= pages.data[PAGE_SIZE - 1]; // touch the result so nothing is optimised away
    pages.unmap();
  }
  const result = pass(pfns.length, performance.now() - started);
  return checksum === -1 ? result : result;
}

async function fill(driver: EmulatedDriver, domid: number, maxPages: number): Promise<Pass> {
  const data = Buffer.alloc(MAX_BATCH_PAGES * PAGE_SIZE);
  for (let i = 0; i < data.length; i += 8) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const started = performance.now();
  for (let start = 0; start < maxPages; start += MAX_BATCH_PAGES) {
    const n = Math.min(MAX_BATCH_PAGES, maxPages - start);
    const pfns = Array.from({ length: n }, (_, i) => start + i);
    await driver.writePages(domid, pfns, data.subarray(0, n * PAGE_SIZE));
  }
  return pass(maxPages, performance.now() - started);
}

function shuffled(n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  let seed = 12345;
  for (let i = n - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      memory: { type: 'string', default: '1GiB' },
      'memtest-memory': { type: 'string', default: '256MiB' },
      seconds: { type: 'string', default: '5' },
      json: { type: 'boolean', default: false },
    },
  });
  const readPages = Math.ceil(parseByteSize(values.memory!) / PAGE_SIZE);
  const memtestPages = Math.ceil(parseByteSize(values['memtest-memory']!) / PAGE_SIZE);
  const seconds = Number(values.seconds);
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  const host = await spawnEmuHost({ name: 'bench', dir, capacityBytes: (readPages + memtestPages) * PAGE_SIZE });
  const driver = await connectEmulatedDriver(host.socketPath);
  try {
    // 1. A restore domain filled by writePages, then read back.
    const target = await driver.createRestoreDomain({ name: 'bench-read', maxPages: readPages, vcpus: 1 });
    const write = await fill(driver, target, readPages);
    const pfns = bitmapPfns(await driver.p2m(target));
    const cold = await readAll(driver, target, pfns);
    const warm = await readAll(driver, target, pfns);
    const random = await readAll(driver, target, pfns, shuffled(Math.ceil(pfns.length / MAX_BATCH_PAGES)));
    await driver.destroy(target);

    // 2. memtest: page writes per second, dirty rate, and a read while it writes.
    const domid = await driver.createDomain({
      name: 'bench-memtest',
      maxPages: memtestPages,
      workload: { kind: 'memtest', seed: 1, freeFraction: 0.1, writeRate: 0, pattern: 'sequential' },
    });
    const stats = async () => {
      const text = await driver.xenstoreRead(xsPaths.workloadStats(domid));
      return text ? (JSON.parse(text) as { ops: number; errors: number; uptime_s?: number }) : null;
    };
    await waitFor(async () => ((await stats())?.ops ?? 0) > 0, 'memtest to start writing');
    await driver.logDirtyEnable(domid);
    await driver.logDirtyClean(domid);
    const opsBefore = (await stats())!;
    const started = performance.now();
    const dirtyPerSecond: number[] = [];
    let last = started;
    for (let s = 1; s <= seconds; s++) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + s * 1000 - performance.now())));
      const clean = await driver.logDirtyClean(domid);
      const now = performance.now();
      dirtyPerSecond.push(Math.round(clean.stats.dirtyCount / ((now - last) / 1000)));
      last = now;
    }
    // The guest publishes its counters about once a second: wait for a report newer than the window.
    let opsAfter = (await stats())!;
    await waitFor(async () => {
      opsAfter = (await stats())!;
      return (opsAfter.uptime_s ?? 0) >= (opsBefore.uptime_s ?? 0) + seconds;
    }, 'a fresh memtest report');
    const window = (opsAfter.uptime_s ?? 0) - (opsBefore.uptime_s ?? 0);
    const whileWriting = await readAll(driver, domid, bitmapPfns(await driver.p2m(domid)));
    const finalStats = (await stats())!;
    await driver.destroy(domid);

    const result = {
      read_domain_pages: readPages,
      write_pages: write,
      read_cold: cold,
      read_warm: warm,
      read_random_batches: random,
      memtest: {
        pages: memtestPages,
        page_writes_per_s: Math.round((opsAfter.ops - opsBefore.ops) / window),
        dirty_pages_per_s: dirtyPerSecond,
        errors: finalStats.errors,
        read_while_writing: whileWriting,
      },
    };
    if (values.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(`writePages (fill ${readPages} pages):        ${write.gb_per_s} GB/s`);
      console.log(`mapForeignPages, sequential, first read:  ${cold.gb_per_s} GB/s`);
      console.log(`mapForeignPages, sequential, again:       ${warm.gb_per_s} GB/s`);
      console.log(`mapForeignPages, random batch order:      ${random.gb_per_s} GB/s`);
      console.log(`mapForeignPages while memtest writes:     ${whileWriting.gb_per_s} GB/s`);
      console.log(`memtest page writes/s:                    ${result.memtest.page_writes_per_s}`);
      console.log(`memtest dirty pages/s (CLEAN each second): ${dirtyPerSecond.join(', ')}`);
      console.log(`memtest errors:                           ${finalStats.errors}`);
    }
  } finally {
    await driver.close();
    await host.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
