// Real emulated Xen hosts for tests: each in its own process, in a temp folder removed afterwards.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnEmuHost, type EmuHostProcess } from '@ferry/emu-host';
import { connectEmulatedDriver, type EmulatedDriver } from '@ferry/hypervisor';

export interface TestHost {
  process: EmuHostProcess;
  driver: EmulatedDriver;
}

export interface TestHosts {
  hosts: TestHost[];
  dir: string;
  stop(): Promise<void>;
}

export async function startEmuHosts(names: string[], capacityBytes = 512 * 1024 * 1024): Promise<TestHosts> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-tracker-test-'));
  const hosts: TestHost[] = [];
  const stop = async () => {
    for (const h of hosts) {
      await h.driver.close().catch(() => undefined);
      await h.process.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const name of names) {
      const process = await spawnEmuHost({ name, dir: join(dir, name), capacityBytes });
      try {
        hosts.push({ process, driver: await connectEmulatedDriver(process.socketPath) });
      } catch (err) {
        await process.stop();
        throw err;
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { hosts, dir, stop };
}

