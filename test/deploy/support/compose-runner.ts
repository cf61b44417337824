// Runs the services of docker-compose.yml without Docker, as close to what Compose does as this
// machine allows, so that the file's wiring is tried for real:
// - each service with its own network (not network_mode: service:X) gets a network namespace
//   with its own address on a bridge of the run's own, and every such service's name resolves to
//   that address in every process (Compose's DNS), through a hosts file;
// - each process gets a private mount namespace laid out like the image: the repository at
//   /opt/ferry (the image's WORKDIR), a fresh /tmp, /dev/shm shared exactly as the `ipc:` keys
//   say, and each named volume as a folder shared by the services that mount it (a stand-in
//   program keeps the machine's /tmp, and gets its data folder as an argument);
// - Ferry's processes run as the image's user (10001), with the service's environment only, and
//   its command as written; health checks are the file's own commands, run the same way.
// Services from other images are stood in for by a program of this machine that speaks the same
// protocol (NATS: Debian's nats-server with the service's arguments; Jaeger: an OTLP/gRPC
// receiver), or left out, their name resolving to an address where nothing listens.
//
// Needs root, iproute2 (ip netns), util-linux (unshare, nsenter, setpriv).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ComposeFile, ComposeService } from './compose';
import { REPO_ROOT } from './repo';

/** The user the Dockerfile runs Ferry as. */
export const IMAGE_UID = 10001;
const IMAGE_WORKDIR = '/opt/ferry';
const SUBNET = '10.77.0';

export interface Substitute {
  /** The command to run instead of the image's, given the service's command. */
  command(serviceCommand: string[], dataDir: string): string[];
}

interface Started {
  name: string;
  process: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error ?? r.stderr}`);
}

export class ComposeRun {
  private readonly id = `fy${process.pid}`;
  private readonly namespaces: string[] = [];
  private readonly addresses = new Map<string, string>();
  private readonly started = new Map<string, Started>();
  private readonly healthy = new Set<string>();
  private hostsFile = '';

  constructor(
    private readonly compose: ComposeFile,
    private readonly dir: string,
    private readonly substitutes: Record<string, Substitute | 'absent'>,
  ) {}

  /** Network namespaces for every service that has its own network, and the hosts file naming them. */
  createNetwork(): void {
    const bridgeNs = `${this.id}-sw`;
    sh('ip', ['netns', 'add', bridgeNs]);
    this.namespaces.push(bridgeNs);
    sh('ip', ['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    const owners = Object.entries(this.compose.services).filter(([, s]) => !s.network_mode).map(([n]) => n);
    owners.forEach((name, i) => {
      const ns = this.netnsOf(name);
      const address = `${SUBNET}.${10 + i}`;
      sh('ip', ['netns', 'add', ns]);
      this.namespaces.push(ns);
      sh('ip', ['link', 'add', `p${i}`, 'netns', bridgeNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      sh('ip', ['-n', bridgeNs, 'link', 'set', `p${i}`, 'master', 'br0']);
      sh('ip', ['-n', bridgeNs, 'link', 'set', `p${i}`, 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      this.addresses.set(name, address);
    });
    this.hostsFile = join(this.dir, 'hosts');
    const lines = ['127.0.0.1 localhost', ...[...this.addresses].map(([name, address]) => `${address} ${name}`)];
    writeFileSync(this.hostsFile, `${lines.join('\n')}\n`);
  }

  address(service: string): string | undefined {
    return this.addresses.get(service);
  }

  private netnsOf(service: string): string {
    const mode = this.compose.services[service].network_mode;
    const owner = mode?.startsWith('service:') ? mode.slice('service:'.length) : service;
    return `${this.id}-${Object.keys(this.compose.services).indexOf(owner)}`;
  }

  /** A folder owned by the image's user (a named volume, a /dev/shm). */
  private sharedDir(kind: string, name: string): string {
    const d = join(this.dir, kind, name);
    mkdirSync(d, { recursive: true });
    chownSync(d, IMAGE_UID, IMAGE_UID);
    return d;
  }

  /** The /dev/shm of a service: its own, or the one of the service whose IPC it joins. */
  private shmOf(service: string): string {
    const ipc = this.compose.services[service].ipc;
    return this.sharedDir('shm', ipc?.startsWith('service:') ? ipc.slice('service:'.length) : service);
  }

  /** `argv` inside the service's network and a mount namespace laid out like its container. */
  private containerized(service: string, argv: string[]): { cmd: string; args: string[] } {
    const s = this.compose.services[service];
    // Host folders are bound first: the run's own folders may be under /tmp, which comes last.
    const mounts = [`mount --bind '${this.hostsFile}' /etc/hosts`, `mount --bind '${this.shmOf(service)}' /dev/shm`];
    let user = '';
    if (s.build !== undefined) {
      mounts.push(`mount -t tmpfs -o size=1m tmpfs /opt`, `mkdir ${IMAGE_WORKDIR}`, `mount --bind '${REPO_ROOT}' ${IMAGE_WORKDIR}`);
      user = `setpriv --reuid=${IMAGE_UID} --regid=${IMAGE_UID} --clear-groups --`;
    }
    // A stand-in program gets its data folder as an argument instead.
    const volumes = this.substitutes[service] ? [] : (s.volumes ?? []);
    for (const v of volumes) {
      const [volume, target] = v.split(':');
      if (!/^\/run\//.test(target)) throw new Error(`${service}: only volumes under /run are laid out (${v})`);
      mounts.push('mountpoint -q /run || mount -t tmpfs -o size=1m tmpfs /run', `mkdir -p '${target}'`, `mount --bind '${this.sharedDir('volumes', volume)}' '${target}'`);
    }
    if (s.build !== undefined) mounts.push('mount -t tmpfs -o size=512m,mode=1777 tmpfs /tmp', `cd ${IMAGE_WORKDIR}`);
    // A stand-in program runs from the repository (it may be one of the tests' own), and keeps the
    // machine's /tmp, where its data folder is.
    else mounts.push(`cd '${REPO_ROOT}'`);
    const script = `set -e; ${mounts.join('; ')}; exec ${user} "$@"`;
    return { cmd: 'unshare', args: ['--mount', '--propagation', 'private', 'nsenter', `--net=/run/netns/${this.netnsOf(service)}`, '--', 'sh', '-c', script, 'sh', ...argv] };
  }

  private environment(s: ComposeService): NodeJS.ProcessEnv {
    // What a container of the image has: the image's ENV and the service's environment, no more.
    return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: IMAGE_WORKDIR, NODE_ENV: 'production', ...s.environment };
  }

  private spawnService(service: string, argv: string[], label = service): Started {
    const s = this.compose.services[service];
    const { cmd, args } = this.containerized(service, argv);
    const logFile = join(this.dir, 'logs', `${label}.log`);
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    const fd = openSync(logFile, 'a');
    const child = spawn(cmd, args, { env: this.environment(s), stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = { name: label, process: child, logFile, exited };
    this.started.set(label, started);
    return started;
  }

  /** Starts `service` as `docker compose up` would: after its dependencies, then waits for its health check. */
  async up(service: string, timeoutMs: number): Promise<void> {
    if (this.started.has(service) || this.substitutes[service] === 'absent') return;
    const s = this.compose.services[service];
    for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
      await this.up(dependency, timeoutMs);
      if (condition === 'service_healthy' && this.substitutes[dependency] !== 'absent') await this.waitHealthy(dependency, timeoutMs);
    }
    const owner = s.network_mode?.startsWith('service:') ? s.network_mode.slice('service:'.length) : undefined;
    if (owner) await this.up(owner, timeoutMs);
    const substitute = this.substitutes[service];
    const argv = substitute ? substitute.command(s.command ?? [], this.sharedDir('data', service)) : (s.command ?? []);
    this.spawnService(service, argv);
    if (s.healthcheck) await this.waitHealthy(service, timeoutMs);
  }

  /** Runs the service's own health check until it passes (Compose's "healthy"). */
  async waitHealthy(service: string, timeoutMs: number): Promise<void> {
    if (this.healthy.has(service)) return;
    const test = this.compose.services[service].healthcheck?.test;
    if (!test) return;
    if (test[0] !== 'CMD') throw new Error(`${service}: only CMD health checks are run (${test[0]})`);
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const running = this.started.get(service);
      if (running && running.process.exitCode !== null) {
        throw new Error(`${service} exited with ${running.process.exitCode} before it was healthy:\n${this.logTail(service)}`);
      }
      const { cmd, args } = this.containerized(service, test.slice(1));
      const r = spawnSync(cmd, args, { env: this.environment(this.compose.services[service]), encoding: 'utf8', timeout: 30_000 });
      if (r.status === 0) {
        this.healthy.add(service);
        return;
      }
      last = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
      await new Promise((res) => setTimeout(res, 2000));
    }
    throw new Error(`${service} was not healthy within ${timeoutMs / 1000} s; its health check said: ${last}\n${this.logTail(service)}`);
  }

  /** Runs a one-off service (`docker compose run SERVICE [COMMAND]`) to its end; its exit code and output. */
  async run(service: string, timeoutMs: number, command?: string[]): Promise<{ code: number | null; output: string }> {
    const s = this.compose.services[service];
    for (const dependency of Object.keys(s.depends_on ?? {})) {
      await this.up(dependency, timeoutMs);
      await this.waitHealthy(dependency, timeoutMs);
    }
    const started = this.spawnService(service, command ?? s.command ?? [], `${service}-run-${this.started.size}`);
    const timer = setTimeout(() => started.process.kill('SIGKILL'), timeoutMs);
    const code = await started.exited;
    clearTimeout(timer);
    return { code, output: readFileSync(started.logFile, 'utf8') };
  }

  logTail(service: string, chars = 4000): string {
    const s = this.started.get(service);
    if (!s) return `(${service} was not started)`;
    const text = readFileSync(s.logFile, 'utf8');
    return `--- ${service} (last ${Math.min(chars, text.length)} chars) ---\n${text.slice(-chars)}`;
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes the network namespaces. */
  async down(): Promise<void> {
    const running = [...this.started.values()].filter((s) => s.process.exitCode === null && s.process.signalCode === null);
    for (const s of running) {
      try {
        process.kill(-s.process.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(
      running.map((s) =>
        Promise.race([
          s.exited,
          new Promise((res) => setTimeout(res, 15_000)).then(() => {
            try {
              process.kill(-s.process.pid!, 'SIGKILL');
            } catch {
              // already gone
            }
            return s.exited;
          }),
        ]),
      ),
    );
    for (const ns of this.namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
  }
}
