// A local Ferry cluster on one machine: NATS, N emulated Xen hosts each with its four per-host
// services, and the migration coordinator, every one a separate OS process with its log in the lab
// folder. `lab.json` in that folder records what was started so `ferry lab down` stops exactly that.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_NATS_URL, reachable, startNatsServer } from './nats';
import { isAlive, spawnProcess, stopProcess, type SpawnedProcess } from './processes';

export interface LabHost {
  name: string;
  emuSocket: string;
  hostAgent: string;
  memoryTracker: string;
  balloonManager: string;
  pageStreamer: string;
}

export interface LabProcess {
  name: string;
  pid: number;
  logFile: string;
}

export interface LabState {
  dir: string;
  nats: string;
  /** True when the lab started the NATS server itself. */
  natsStarted: boolean;
  coordinator: string;
  hosts: LabHost[];
  processes: LabProcess[];
  startedAt: string;
}

export interface LabOptions {
  dir?: string;
  hosts?: number;
  /** Memory each emulated host can give to domains. */
  capacityBytes?: number;
  /** Processes outlive this one (ferry lab up) or not (tests, ferry demo). */
  detached?: boolean;
  natsUrl?: string;
  /**
   * Start a nats-server of its own even when one is reachable: the lab's host names (host-1, ...)
   * and migrations then cannot meet another lab's on a shared server (bench, demo).
   */
  privateNats?: boolean;
  /** Extra environment for every service (e.g. OTEL_*). */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export const DEFAULT_LAB_DIR = '.ferry/lab';

export function labDir(dir?: string): string {
  return resolve(dir ?? process.env.FERRY_LAB_DIR ?? DEFAULT_LAB_DIR);
}

export function readLabState(dir?: string): LabState | undefined {
  const file = join(labDir(dir), 'lab.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

/** Every variable whose name starts with OTEL_ is passed on to the services. */
function otelEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('OTEL_') && v !== undefined) out[k] = v;
  return out;
}

export async function startLab(opts: LabOptions = {}): Promise<LabState> {
  const dir = labDir(opts.dir);
  const existing = readLabState(dir);
  if (existing && existing.processes.some((p) => isAlive(p.pid))) {
    throw new Error(`a lab is already running in ${dir} (ferry lab down first)`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const log = opts.log ?? (() => {});
  const detached = opts.detached ?? false;
  const processes: SpawnedProcess[] = [];
  const state: LabState = {
    dir,
    nats: '',
    natsStarted: false,
    coordinator: '',
    hosts: [],
    processes: [],
    startedAt: new Date().toISOString(),
  };
  const save = () => {
    state.processes = processes.map((p) => ({ name: p.name, pid: p.pid, logFile: p.logFile }));
    writeFileSync(join(dir, 'lab.json'), JSON.stringify(state, null, 2));
  };
  const start = async (o: Parameters<typeof spawnProcess>[0]) => {
    const p = await spawnProcess(o);
    processes.push(p);
    save();
    return p;
  };
  const address = (p: SpawnedProcess) => String(p.ready.address);

  try {
    const wanted = opts.natsUrl ?? process.env.NATS_URL ?? DEFAULT_NATS_URL;
    if (!opts.privateNats && (await reachable(wanted))) {
      state.nats = wanted;
    } else if (!opts.privateNats && (opts.natsUrl ?? process.env.NATS_URL)) {
      throw new Error(`NATS_URL ${wanted} is not reachable`);
    } else {
      log(opts.privateNats ? 'starting a nats-server of its own' : 'no NATS server reachable: starting nats-server');
      const nats = await startNatsServer(join(dir, 'nats'), join(dir, 'logs', 'nats-server.log'), detached);
      processes.push(nats.process);
      state.nats = nats.url;
      state.natsStarted = true;
    }
    save();
    const common = { NATS_URL: state.nats, ...otelEnv(), ...opts.env };
    const capacity = String(opts.capacityBytes ?? 4 * 1024 ** 3);

    for (let i = 1; i <= (opts.hosts ?? 2); i++) {
      const name = `host-${i}`;
      const hostDir = join(dir, name);
      mkdirSync(hostDir, { recursive: true });
      const logFile = (svc: string) => join(dir, 'logs', `${name}.${svc}.log`);
      log(`starting ${name}`);
      const emu = await start({
        name: `${name}/emu-host`,
        entry: 'libs/emu-host/src/main.ts',
        args: ['--name', name, '--dir', hostDir, '--capacity', capacity],
        logFile: logFile('emu-host'),
        detached,
        env: common,
      });
      const emuSocket = String(emu.ready.socket);
      const hostEnv = { ...common, FERRY_HOST: name, FERRY_DRIVER: 'emulated', FERRY_EMU_SOCKET: emuSocket };
      const svc = (service: string, env: Record<string, string> = {}) =>
        start({ name: `${name}/${service}`, entry: `services/${service}/src/main.ts`, logFile: logFile(service), detached, env: { ...hostEnv, ...env } });
      const [tracker, balloon] = await Promise.all([svc('memory-tracker'), svc('balloon-manager')]);
      const streamer = await svc('page-streamer', { FERRY_MEMORY_TRACKER: address(tracker) });
      const agent = await svc('host-agent', {
        FERRY_MEMORY_TRACKER: address(tracker),
        FERRY_BALLOON_MANAGER: address(balloon),
        FERRY_PAGE_STREAMER: address(streamer),
      });
      state.hosts.push({
        name,
        emuSocket,
        hostAgent: address(agent),
        memoryTracker: address(tracker),
        balloonManager: address(balloon),
        pageStreamer: address(streamer),
      });
      save();
    }
    log('starting migration-coordinator');
    const coordinator = await start({
      name: 'migration-coordinator',
      entry: 'services/migration-coordinator/src/main.ts',
      logFile: join(dir, 'logs', 'migration-coordinator.log'),
      detached,
      env: { ...common, FERRY_HOST: 'coordinator', FERRY_COORDINATOR_STATE: join(dir, 'coordinator') },
    });
    state.coordinator = address(coordinator);
    save();
    return state;
  } catch (err) {
    await stopLab(dir);
    throw err;
  }
}

/** Stops every process the lab started (newest first) and leaves nothing running. */
export async function stopLab(dir?: string): Promise<{ stopped: number }> {
  const state = readLabState(dir);
  if (!state) return { stopped: 0 };
  let stopped = 0;
  for (const p of [...state.processes].reverse()) {
    if (isAlive(p.pid)) stopped++;
    await stopProcess(p.pid);
  }
  state.processes = [];
  writeFileSync(join(state.dir, 'lab.json'), JSON.stringify(state, null, 2));
  return { stopped };
}

export function labProcessStatus(state: LabState): Array<LabProcess & { alive: boolean }> {
  return state.processes.map((p) => ({ ...p, alive: isAlive(p.pid) }));
}
