// Ferry's four per-host services inside a nested dom0, with the native driver (FERRY_DRIVER=xen).
// Node, the services' bundles (service-bundles.ts) and the repository's node_modules come from the
// read-only 9p share of the outer machine's / (mounted at /host); logs and pid files go to the
// host's writable share (/work/ferry), which the harness reads directly on the outer machine.
//
// Addresses: every service listens on 0.0.0.0:<port> and QEMU forwards the same port number from
// the outer loopback, so "127.0.0.1:<port>" reaches it from inside dom0 and from the outer machine
// alike, and the host-agent's own registered "0.0.0.0:<port>" is dialled as loopback outside.
// The page data port is advertised as "<host name>:<port>"; the other dom0 resolves that name to
// 10.0.2.2 (/etc/hosts), where a relay on the outer machine counts the bytes and passes them on.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NestedXenHost } from './nested-host';
import { REPO_ROOT } from './settings';
import type { FerryPorts } from './xen-lab';

export const SERVICES = ['memory-tracker', 'balloon-manager', 'page-streamer', 'host-agent'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface Dom0ServicesOptions {
  host: NestedXenHost;
  /** Each service's bundle on the outer machine (service-bundles.ts). */
  bundles: Record<ServiceName, string>;
  ports: FerryPorts;
  /** NATS as dom0 reaches it (nats://10.0.2.2:<port>). */
  natsUrl: string;
  /** The other host's name, resolved to the outer machine where the data relay listens. */
  peerName: string;
  logLevel?: string;
}

const NODE = '/host/usr/bin/node';
/** Where a target's host-agent tees the stream it gives xl migrate-receive (dom0's path; the host's <dir>/ferry outside). */
export const XL_STREAM_CAPTURE = '/work/ferry/xl-stream-received.bin';

export async function startDom0Services(opts: Dom0ServicesOptions): Promise<void> {
  const { host, ports } = opts;
  const local = (port: number) => `127.0.0.1:${port}`;
  const common: Record<string, string> = {
    FERRY_HOST: host.name,
    FERRY_DRIVER: 'xen',
    NATS_URL: opts.natsUrl,
    FERRY_LOG_LEVEL: opts.logLevel ?? 'info',
    HOME: '/tmp',
    TMPDIR: '/tmp',
    PATH: '/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin:/host/usr/bin',
    // The bundles leave npm packages external: they load from the repository's node_modules.
    NODE_PATH: `/host${REPO_ROOT}/node_modules`,
  };
  const env: Record<ServiceName, Record<string, string>> = {
    'memory-tracker': { FERRY_LISTEN: `0.0.0.0:${ports.memoryTracker}` },
    'balloon-manager': { FERRY_LISTEN: `0.0.0.0:${ports.balloonManager}` },
    'page-streamer': {
      FERRY_LISTEN: `0.0.0.0:${ports.pageStreamer}`,
      FERRY_DATA_LISTEN: `0.0.0.0:${ports.pageData}`,
      FERRY_MEMORY_TRACKER: local(ports.memoryTracker),
    },
    'host-agent': {
      FERRY_LISTEN: `0.0.0.0:${ports.hostAgent}`,
      // A Xen target: the stream handed to xl migrate-receive, for Xen's verifier, and xl's own log.
      FERRY_XL_STREAM_CAPTURE: XL_STREAM_CAPTURE,
      FERRY_XL_RECEIVE_LOG: '/work/ferry/xl-migrate-receive.log',
      FERRY_XL_VERBOSE: '1',
      FERRY_MEMORY_TRACKER: local(ports.memoryTracker),
      FERRY_BALLOON_MANAGER: local(ports.balloonManager),
      FERRY_PAGE_STREAMER: local(ports.pageStreamer),
    },
  };
  const repo = `/host${REPO_ROOT}`;
  const lines = [
    `grep -q ' ${opts.peerName}$' /etc/hosts || echo '10.0.2.2 ${opts.peerName}' >> /etc/hosts`,
    `grep -q ' ${host.name}$' /etc/hosts || echo '127.0.0.1 ${host.name}' >> /etc/hosts`,
    'mkdir -p /work/ferry',
    `cd ${repo} || exit 1`,
    `[ -x ${NODE} ] || { echo "no node at ${NODE}"; exit 1; }`,
  ];
  for (const svc of SERVICES) {
    const vars = Object.entries({ ...common, ...env[svc] })
      .map(([k, v]) => `${k}='${v}'`)
      .join(' ');
    lines.push(
      `env ${vars} setsid ${NODE} /host${opts.bundles[svc]} </dev/null >/work/ferry/${svc}.log 2>&1 &`,
      `echo $! > /work/ferry/${svc}.pid`,
    );
  }
  await host.shell.check(lines.join('\n'));
}

/** Waits until every service logged "ready"; fails with a service's own last words if it exits first. */
export async function waitDom0ServicesReady(host: NestedXenHost, timeoutMs: number): Promise<void> {
  const dir = join(host.opts.dir, 'ferry');
  const deadline = Date.now() + timeoutMs;
  const pending = new Set<ServiceName>(SERVICES);
  while (pending.size > 0) {
    for (const svc of [...pending]) {
      const log = readLog(join(dir, `${svc}.log`));
      if (log.some((l) => l.msg === 'ready')) pending.delete(svc);
    }
    if (pending.size === 0) return;
    const alive = await host.shell.run(
      [...pending].map((svc) => `kill -0 $(cat /work/ferry/${svc}.pid) 2>/dev/null || echo "gone ${svc}"`).join('\n'),
    );
    const gone = /gone (\S+)/.exec(alive.output)?.[1] as ServiceName | undefined;
    if (gone) {
      // A service may log "ready" and exit between the two looks; only a service still not ready counts.
      if (readLog(join(dir, `${gone}.log`)).some((l) => l.msg === 'ready')) continue;
      throw new Error(`${host.name}/${gone} exited before it was ready: ${lastWords(join(dir, `${gone}.log`))}`);
    }
    if (host.exited) throw new Error(`${host.name}: QEMU ${host.exited} while Ferry's services started`);
    if (Date.now() > deadline) throw new Error(`${host.name}: ${[...pending].join(', ')} not ready within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

export async function stopDom0Services(host: NestedXenHost): Promise<void> {
  if (host.exited) return;
  const pids = SERVICES.map((svc) => `/work/ferry/${svc}.pid`).join(' ');
  await host.shell
    .run(`for f in ${pids}; do [ -f $f ] && kill $(cat $f) 2>/dev/null; done; sleep 3; for f in ${pids}; do [ -f $f ] && kill -9 $(cat $f) 2>/dev/null; rm -f $f; done; true`, 60_000)
    .catch(() => {});
}

function readLog(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  const out: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return out;
}

/** The fatal/error line of a service's log if it has one, else its last lines. */
export function lastWords(file: string): string {
  if (!existsSync(file)) return '(no log)';
  const text = readFileSync(file, 'utf8').trim();
  const fatal = readLog(file).find((l) => l.level === 60 || l.level === 50);
  if (fatal) return `${String(fatal.msg)}${fatal.err ? `: ${typeof fatal.err === 'string' ? fatal.err : JSON.stringify(fatal.err)}` : ''}`;
  return text.split('\n').slice(-6).join(' | ').slice(-1500);
}
