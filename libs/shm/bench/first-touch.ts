// Benchmark (not a test): what a process pays to copy pages of a shared memory object it has not
// touched before, through a mapping (a page fault per page at first touch) and through the
// descriptor (read/write: pread/pwrite), per page and in 1024-page runs. The emulated driver's
// dom0 page I/O goes through the descriptor because of these figures (BENCHMARKS.md §3).
//
//   node --import tsx libs/shm/bench/first-touch.ts [--pages 65536]

import { parseArgs } from 'node:util';
import { SharedMemoryObject, unlinkSharedMemory } from '../src/index';

const PAGE = 4096;
const RUN = 1024;

function main(): void {
  const { values } = parseArgs({ options: { pages: { type: 'string', default: '65536' } } });
  const pages = Number(values.pages);
  if (!Number.isInteger(pages) || pages < RUN || pages % RUN !== 0) throw new RangeError(`--pages must be a multiple of ${RUN}`);
  const scratch = Buffer.alloc(RUN * PAGE, 7);
  const names: string[] = [];
  const fresh = () => {
    const name = `/ferry-first-touch-${process.pid}-${names.length}`;
    names.push(name);
    return SharedMemoryObject.create(name, pages * PAGE);
  };
  const report = (what: string, run: () => void) => {
    const started = performance.now();
    run();
    const ms = performance.now() - started;
    console.log(`${what.padEnd(58)} ${((ms * 1000) / pages).toFixed(2).padStart(6)} us/page`);
  };
  const eachPage = (f: (page: number) => void) => () => {
    for (let p = 0; p < pages; p++) f(p);
  };
  const eachRun = (f: (page: number) => void) => () => {
    for (let p = 0; p < pages; p += RUN) f(p);
  };
  const slot = (p: number) => (p % RUN) * PAGE;
  try {
    const a = fresh();
    const mapped = Buffer.from(a.map());
    report('write through a mapping, first touch (fresh pages)', eachPage((p) => scratch.copy(mapped, p * PAGE, slot(p), slot(p) + PAGE)));
    report('write through the same mapping again', eachPage((p) => scratch.copy(mapped, p * PAGE, slot(p), slot(p) + PAGE)));
    const second = Buffer.from(a.map());
    report('read through a second mapping, first touch', eachPage((p) => second.copy(scratch, slot(p), p * PAGE, (p + 1) * PAGE)));
    report('read through the second mapping again', eachPage((p) => second.copy(scratch, slot(p), p * PAGE, (p + 1) * PAGE)));
    report('read through the descriptor, one page a call', eachPage((p) => a.read(p * PAGE, scratch, slot(p), PAGE)));
    report(`read through the descriptor, ${RUN} pages a call`, eachRun((p) => a.read(p * PAGE, scratch, 0, RUN * PAGE)));
    const b = fresh();
    report(`write through the descriptor into fresh pages, ${RUN} a call`, eachRun((p) => b.write(p * PAGE, scratch, 0, RUN * PAGE)));
    report('write through the descriptor, one page a call', eachPage((p) => b.write(p * PAGE, scratch, slot(p), PAGE)));
    a.close();
    b.close();
  } finally {
    for (const name of names) unlinkSharedMemory(name);
  }
}

main();
