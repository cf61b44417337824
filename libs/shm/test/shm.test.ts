import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  SharedMemoryObject,
  listSharedMemory,
  liveMappingCount,
  unlinkSharedMemory,
  MAX_WINDOW_BYTES,
} from '../src/index';

const prefix = `/ferry-shmtest-${process.pid}-`;
let seq = 0;
const freshName = () => `${prefix}${seq++}`;

function cleanup(...objects: SharedMemoryObject[]): void {
  for (const o of objects) {
    o.close();
    unlinkSharedMemory(o.name);
  }
}

test('create, map, write, reopen read-only and read back', () => {
  const obj = SharedMemoryObject.create(freshName(), 1 << 20);
  try {
    assert.equal(obj.size, 1 << 20);
    assert.equal(obj.allocatedBytes(), 0, 'a new object is sparse');
    const bytes = new Uint8Array(obj.map());
    bytes[4096 * 3 + 7] = 42;
    const reader = SharedMemoryObject.open(obj.name, { writable: false });
    try {
      assert.equal(new Uint8Array(reader.map())[4096 * 3 + 7], 42);
      assert.equal(reader.writable, false);
    } finally {
      reader.close();
    }
    assert.equal(obj.allocatedBytes(), 4096, 'only the touched page costs memory');
  } finally {
    cleanup(obj);
  }
});

test('punchHole frees the pages and they read back as zero through every mapping', () => {
  const obj = SharedMemoryObject.create(freshName(), 64 * 4096);
  try {
    const a = new Uint8Array(obj.map());
    const b = new Uint8Array(obj.map());
    for (let p = 0; p < 64; p++) a[p * 4096] = p + 1;
    assert.equal(obj.allocatedBytes(), 64 * 4096);
    obj.punchHole(8 * 4096, 16 * 4096);
    assert.equal(obj.allocatedBytes(), 48 * 4096);
    for (let p = 0; p < 64; p++) {
      const expected = p >= 8 && p < 24 ? 0 : p + 1;
      assert.equal(a[p * 4096], expected, `page ${p} via mapping a`);
      assert.equal(b[p * 4096], expected, `page ${p} via mapping b`);
    }
  } finally {
    cleanup(obj);
  }
});

test('allocate backs a range with zeroed memory up front', () => {
  const obj = SharedMemoryObject.create(freshName(), 64 * 4096);
  try {
    obj.allocate(16 * 4096, 8 * 4096);
    assert.equal(obj.allocatedBytes(), 8 * 4096);
    const bytes = new Uint8Array(obj.map());
    assert.equal(bytes[16 * 4096], 0);
    bytes[20 * 4096] = 5;
    assert.equal(obj.allocatedBytes(), 8 * 4096, 'writing an allocated page costs nothing more');
  } finally {
    cleanup(obj);
  }
});

test('read and write go through the descriptor: they see the mappings, holes stay holes, the end is checked', () => {
  const obj = SharedMemoryObject.create(freshName(), 16 * 4096);
  const readOnly = SharedMemoryObject.open(obj.name, { writable: false });
  try {
    const view = new Uint8Array(obj.map());
    view.fill(0xab, 4096, 3 * 4096); // pages 1 and 2 through the mapping
    const out = Buffer.alloc(4 * 4096, 0xff);
    readOnly.read(0, out, 0, 4 * 4096); // pages 0 and 3 are holes
    assert.ok(out.subarray(0, 4096).every((b) => b === 0), 'a hole reads as zeros');
    assert.ok(out.subarray(4096, 3 * 4096).every((b) => b === 0xab), 'pages written through the mapping');
    assert.ok(out.subarray(3 * 4096).every((b) => b === 0));
    assert.equal(obj.allocatedBytes(), 2 * 4096, 'reading holes allocates nothing');

    const source = Buffer.alloc(2 * 4096 + 100, 0x5c);
    obj.write(8 * 4096, source, 100, 2 * 4096);
    assert.ok(view.subarray(8 * 4096, 10 * 4096).every((b) => b === 0x5c), 'the mapping sees the write');
    assert.equal(view[10 * 4096], 0);

    assert.throws(() => obj.write(15 * 4096, source, 0, 2 * 4096), RangeError);
    assert.throws(() => readOnly.read(15 * 4096, out, 0, 2 * 4096), /ran past the end/);
    assert.throws(() => readOnly.write(0, source, 0, 4096), { code: 'EBADF' });
  } finally {
    readOnly.close();
    cleanup(obj);
  }
});

test('an object larger than 4 GiB maps as 1 GiB windows', () => {
  const size = 6 * 2 ** 30; // sparse: costs nothing until touched
  const obj = SharedMemoryObject.create(freshName(), size);
  try {
    const windows = obj.mapWindows();
    assert.equal(windows.length, 6);
    for (const w of windows) assert.equal(w.byteLength, MAX_WINDOW_BYTES);
    new Uint8Array(windows[5])[MAX_WINDOW_BYTES - 1] = 9;
    const reader = SharedMemoryObject.open(obj.name, { writable: false });
    try {
      const last = new Uint8Array(reader.map(size - 4096, 4096));
      assert.equal(last[4095], 9);
    } finally {
      reader.close();
    }
    assert.equal(obj.allocatedBytes(), 4096);
  } finally {
    cleanup(obj);
  }
});

test('unmap and close detach buffers instead of leaving dangling memory', () => {
  const before = liveMappingCount();
  const obj = SharedMemoryObject.create(freshName(), 8192);
  try {
    const first = obj.map();
    const view = new Uint8Array(first);
    const second = obj.map();
    assert.equal(liveMappingCount(), before + 2);
    obj.unmap(first);
    assert.equal(first.byteLength, 0);
    assert.equal(view.length, 0, 'views of an unmapped buffer are empty');
    assert.equal(liveMappingCount(), before + 1);
    obj.close();
    assert.equal(second.byteLength, 0);
    assert.equal(liveMappingCount(), before);
    assert.throws(() => obj.map(), /after close\(\)/);
  } finally {
    cleanup(obj);
  }
});

test('errors name the call, the object and the errno', () => {
  const obj = SharedMemoryObject.create(freshName(), 4096);
  try {
    assert.throws(() => SharedMemoryObject.create(obj.name, 4096), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EEXIST');
      assert.match(err.message, /shm_open\(".*", create\) failed: File exists/);
      return true;
    });
    assert.throws(() => SharedMemoryObject.open(`${prefix}missing`, { writable: false }), { code: 'ENOENT' });
    assert.throws(() => SharedMemoryObject.create('no-leading-slash', 1), { code: 'EINVAL' });
    assert.throws(() => SharedMemoryObject.create('/a/b', 1), /invalid shared memory name/);
    assert.throws(() => obj.map(0, 8192), /cannot map 8192 bytes/);
    assert.throws(() => obj.map(100, 10), /multiple of the page size/);
    assert.throws(() => obj.mapWindows(1000), /positive multiple/);
    const reader = SharedMemoryObject.open(obj.name, { writable: false });
    try {
      assert.throws(() => reader.punchHole(0, 4096), { code: 'EBADF' });
    } finally {
      reader.close();
    }
  } finally {
    cleanup(obj);
  }
  assert.equal(unlinkSharedMemory(obj.name), false);
});

test('Atomics over the mapping are atomic across processes', async () => {
  const obj = SharedMemoryObject.create(freshName(), 4096);
  try {
    const words = new Int32Array(obj.map());
    const count = 300_000;
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'atomic-adder.ts'), obj.name, String(count)], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exited = once(child, 'exit');
    let exitCode: number | null | undefined;
    void exited.then(([code]) => (exitCode = code as number | null));
    let taken = 0;
    // Race the child: take the counter with exchange while it adds. Nothing may be lost.
    while (Atomics.load(words, 1) === 0 && exitCode === undefined) {
      for (let i = 0; i < 10_000; i++) taken += Atomics.exchange(words, 0, 0);
      await yieldToLoop();
    }
    await exited;
    assert.equal(exitCode, 0);
    taken += Atomics.exchange(words, 0, 0);
    assert.equal(taken, count);
  } finally {
    cleanup(obj);
  }
});

test('no objects of this test are left', () => {
  assert.deepEqual(listSharedMemory(prefix), []);
});
