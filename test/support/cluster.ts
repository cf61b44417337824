// A real local cluster for end-to-end tests: its own nats-server on a free port, two emulated
// hosts with their four services each, and the coordinator, all separate processes; everything is
// stopped and removed by `close()`.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryClient } from '@ferry/client';
import { startLab, startNatsServer, stopLab, stopProcess, type LabState } from '@ferry/lab';
import { DomainState, type Domain } from '@ferry/proto';

export interface TestCluster {
  lab: LabState;
  ferry: FerryClient;
  dir: string;
  close(): Promise<void>;
  /** Every domain of that name, on every host. */
  domainsNamed(name: string): Promise<Domain[]>;
  /** Kills one of the lab's processes, e.g. "host-1/page-streamer", with SIGKILL. */
  kill(processName: string): void;
}

/** `env`: extra environment for every service of the lab (e.g. OTEL_* to export traces). */
export async function startTestCluster(hosts = 2, opts: { env?: Record<string, string> } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-'));
  const nats = await startNatsServer(join(dir, 'nats'), join(dir, 'nats.log'), false);
  let lab: LabState;
  try {
    lab = await startLab({ dir: join(dir, 'lab'), hosts, natsUrl: nats.url, detached: false, env: opts.env });
  } catch (err) {
    await stopProcess(nats.process.pid);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const ferry = new FerryClient(lab.coordinator, { deadlineMs: 120_000 });
  return {
    lab,
    ferry,
    dir,
    async close() {
      ferry.close();
      await stopLab(lab.dir);
      await stopProcess(nats.process.pid);
      rmSync(dir, { recursive: true, force: true });
    },
    async domainsNamed(name) {
      const res = await ferry.listDomains();
      return res.domains.filter((d) => d.name === name);
    },
    kill(processName) {
      const p = lab.processes.find((x) => x.name === processName);
      if (!p) throw new Error(`no lab process named ${processName}`);
      process.kill(p.pid, 'SIGKILL');
    },
  };
}

export const running = (d: Domain) => d.state === DomainState.DOMAIN_STATE_RUNNING;

/** Shared-memory objects the emulated hosts of this cluster left behind (should be none). */
export function leftoverShm(pids: number[]): string[] {
  try {
    return readdirSync('/dev/shm').filter((f) => f.startsWith('ferry-') && pids.some((p) => f.includes(`-${p}-`)));
  } catch {
    return [];
  }
}
