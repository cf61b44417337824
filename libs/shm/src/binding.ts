// Loads the native addon from build/Release, with a message that says how to build it if missing.

import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The raw addon (src/native/shm.c). Prefer SharedMemoryObject, which owns descriptors and mappings. */
export interface ShmBinding {
  /** Creates a new object of `size` bytes (sparse) and returns its descriptor; EEXIST if the name is taken. */
  create(name: string, size: number): number;
  open(name: string, writable: boolean): number;
  size(fd: number): number;
  /** Bytes of memory really backing the object (st_blocks * 512). */
  allocatedBytes(fd: number): number;
  map(fd: number, offset: number, length: number, writable: boolean): ArrayBuffer;
  /** Detaches the buffer (its views read as length 0 from then on) and munmaps it. */
  unmap(buffer: ArrayBuffer): void;
  punchHole(fd: number, offset: number, length: number): void;
  /** Backs the range with memory now (fallocate mode 0). */
  allocate(fd: number, offset: number, length: number): void;
  close(fd: number): void;
  unlink(name: string): void;
  /** Mappings of this process not yet unmapped or collected. */
  liveMappings(): number;
}

const addonPath = join(__dirname, '..', 'build', 'Release', 'ferry_shm.node');

function load(): ShmBinding {
  if (!existsSync(addonPath)) {
    throw new Error(
      `@ferry/shm: the native addon is not built (${addonPath} is missing). Build it in libs/shm with ` +
        '`npm run build -w @ferry/shm` (npm\'s bundled node-gyp; needs g++, make and python3).',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(addonPath) as ShmBinding;
}

export const binding: ShmBinding = load();
