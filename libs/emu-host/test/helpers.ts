// Shared by the emulated host's tests: real host processes in temp folders, a driver connected to
// each, waiting on xenstore conditions (never sleeping and hoping), and a cleanup that fails the
// test if a host left a shared memory object or its socket behind.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HypervisorError,
  connectEmulatedDriver,
  type DomainInfo,
  type EmulatedDriver,
  type HypervisorDriver,
} from '@ferry/hypervisor';
import { listSharedMemory, liveMappingCount } from '@ferry/shm';
import { spawnEmuHost, type EmuHostProcess } from '../src/index';

export const SCRIPTED_KERNEL = join(__dirname, 'fixtures', 'scripted-kernel.ts');
/** Generous: these tests run on busy 2-core machines. */
export const WAIT_MS = 60_000;

export interface TestHost {
  process: EmuHostProcess;
  driver: EmulatedDriver;
  dir: string;
}

export interface TestHostOptions {
  name: string;
  capacityBytes?: number;
  kernel?: 'scripted' | 'guest';
}

const started: TestHost[] = [];

export async function startHost(opts: TestHostOptions): Promise<TestHost> {
  const dir = mkdtempSync(join(tmpdir(), `ferry-emu-${opts.name}-`));
  const process = await spawnEmuHost({
    name: opts.name,
    dir,
    capacityBytes: opts.capacityBytes ?? 256 * 1024 * 1024,
    kernelModule: opts.kernel === 'guest' ? undefined : SCRIPTED_KERNEL,
  });
  const driver = await connectEmulatedDriver(process.socketPath);
  const host = { process, driver, dir };
  started.push(host);
  return host;
}

/**
 * Stops every host started by this test file, removes their folders, and asserts that nothing of
 * them is left: no shared memory object, no socket, no mapping in this process.
 */
export async function stopAllHosts(): Promise<void> {
  const hosts = started.splice(0);
  const problems: string[] = [];
  for (const host of hosts) {
    await host.driver.close();
    await host.process.stop();
  }
  for (const host of hosts) {
    const { name } = host.process;
    const { code } = await host.process.exited;
    if (code !== 0) problems.push(`host ${name} exited with code ${code}\n${host.process.logTail()}`);
    const left = listSharedMemory(host.process.shmPrefix);
    if (left.length > 0) problems.push(`host ${name} left shared memory behind: ${left.join(', ')}`);
    if (existsSync(host.process.socketPath)) problems.push(`host ${name} left its socket behind`);
    rmSync(host.dir, { recursive: true, force: true });
  }
  if (liveMappingCount() !== 0) problems.push(`this test process still has ${liveMappingCount()} shared memory mappings`);
  assert.deepEqual(problems, []);
}

/** Resolves with the value at `path` once `accept(value)` holds, re-checking on every watch event. */
export async function waitForXenstore(
  driver: HypervisorDriver,
  path: string,
  accept: (value: string | null) => boolean,
  timeoutMs = WAIT_MS,
): Promise<string | null> {
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  let watch: { close(): Promise<void> } | undefined;
  try {
    return await new Promise<string | null>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${path} did not reach the expected value within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        driver.xenstoreRead(path).then((value) => {
          if (!done && accept(value)) {
            done = true;
            resolve(value);
          }
        }, reject);
      };
      driver.xenstoreWatch(path, check).then((w) => (watch = w), reject);
    });
  } finally {
    done = true;
    clearTimeout(timer);
    await watch?.close().catch(() => {});
  }
}

/** Polls domainInfo until `accept` holds (domain info has no watch of its own beyond @releaseDomain). */
export async function waitForDomain(
  driver: HypervisorDriver,
  domid: number,
  accept: (info: DomainInfo) => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<DomainInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await driver.domainInfo(domid);
    if (accept(info)) return info;
    if (Date.now() > deadline) throw new Error(`domain ${domid}: ${what} did not happen within ${timeoutMs} ms (last: ${JSON.stringify(info)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const home = (domid: number, rest: string) => `/local/domain/${domid}/${rest}`;

/** Waits until the scripted kernel has started (after boot or resume number `resumes`). */
export function scriptedReady(driver: HypervisorDriver, domid: number, resumes = 0): Promise<string | null> {
  return waitForXenstore(driver, home(domid, 'test/ready'), (v) => v === String(resumes));
}

let commandSeq = 0;

/** Runs one command of the scripted kernel (see fixtures/scripted-kernel.ts) and returns its value. */
export async function guestCommand(
  driver: HypervisorDriver,
  domid: number,
  op: 'write' | 'read' | 'balloon' | 'populate' | 'ticks' | 'crash',
  pfns?: number[],
): Promise<unknown> {
  const seq = ++commandSeq;
  const resultPath = home(domid, 'test/result');
  const pending = waitForXenstore(driver, resultPath, (v) => v !== null && (JSON.parse(v) as { seq: number }).seq === seq);
  await driver.xenstoreWrite(home(domid, 'test/cmd'), JSON.stringify({ seq, op, pfns }));
  const result = JSON.parse((await pending)!) as { ok: boolean; value?: unknown; error?: string };
  if (!result.ok) throw new Error(`guest command ${op} failed: ${result.error}`);
  return result.value;
}

/** The value the scripted kernel's `write` command stores in word 0 of pfn. */
export function stampOf(pfn: number, seq: number): number {
  return pfn * 7 + seq;
}

export function currentCommandSeq(): number {
  return commandSeq;
}

/** An assert.rejects matcher: a HypervisorError with this code and a message matching `message`. */
export function isCode(code: HypervisorError['code'], message: RegExp) {
  return (err: unknown): true => {
    assert.ok(err instanceof HypervisorError, `expected a HypervisorError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  };
}
