// The coordinator as its tests run it: node --import tsx services/migration-coordinator/src/main.ts
// in a test's temporary folder, found ready by its log, stopped by pid.

import { join } from 'node:path';
import { spawnProcess, stopProcess, tail, type SpawnedProcess } from '@ferry/lab';

export interface CoordinatorProcess {
  address: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
  log(lines?: number): string;
}

export async function startCoordinator(dir: string, natsUrl: string, env: Record<string, string> = {}, name = 'coordinator'): Promise<CoordinatorProcess> {
  const logFile = join(dir, `${name}.log`);
  const p: SpawnedProcess = await spawnProcess({
    name,
    entry: 'services/migration-coordinator/src/main.ts',
    logFile,
    detached: false,
    env: { NATS_URL: natsUrl, FERRY_LISTEN: '127.0.0.1:0', ...env },
  });
  return {
    address: String(p.ready.address),
    pid: p.pid,
    logFile,
    stop: () => stopProcess(p.pid),
    log: (lines = 40) => tail(logFile, lines),
  };
}
