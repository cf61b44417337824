// `ferry demo` (npm start): a kv guest under client load, one live migration with the best policy,
// a readable summary. By default on a two-host lab it starts and stops itself; with --coordinator on
// a running cluster instead (docker-compose's demo profile, Kubernetes), where the guest stays and
// each run moves it to the other host. (FERRY_COORDINATOR is not read here: `npm start` always
// means the lab.)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryClient } from '@ferry/client';
import { startLab, stopLab } from '@ferry/lab';
import { DomainState, WorkloadKind } from '@ferry/proto';
import { parseBandwidthBits, parseBytes } from '@ferry/runtime';
import { num, parse } from '../args';
import { runMigrationSession } from '../migration-session';
import { describeEvent } from '../progress';
import { printSummary } from './migrate';
import type { Command } from './command';

const DEMO_DOMAIN = 'demo-kv';

/** How long a cluster that is still starting gets to show two hosts. */
const HOSTS_TIMEOUT_MS = 180_000;

type Policy = 'xen-4.17' | 'xen-legacy' | 'layered';

interface DemoSettings {
  memory: number;
  free: number;
  seed: number;
  policy: Policy;
  bandwidthBps: number;
}

const say = (s: string) => console.log(s);

export const demo: Command = {
  name: 'demo',
  usage: 'demo [--memory 256MiB] [--free 0.5] [--policy layered] [--bandwidth 1gbit] [--keep] [--coordinator ADDR]',
  summary: 'live-migrate a kv guest under load and print what happened (on a lab it starts, or a running cluster)',
  async run(argv) {
    const { values } = parse(argv, {
      memory: { type: 'string' },
      free: { type: 'string' },
      policy: { type: 'string' },
      bandwidth: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean' },
      coordinator: { type: 'string' },
    });
    const settings: DemoSettings = {
      memory: parseBytes(values.memory ?? '256MiB'),
      free: num(values.free, 'free', 0.5),
      seed: num(values.seed, 'seed', 1),
      policy: (values.policy ?? 'layered') as Policy,
      bandwidthBps: parseBandwidthBits(values.bandwidth ?? '1gbit'),
    };
    return values.coordinator ? demoOnCluster(values.coordinator, settings) : demoOnLab(settings, values.keep ?? false);
  },
};

async function demoOnLab(settings: DemoSettings, keep: boolean): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping the lab…');
    await stopLab(dir);
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`starting a two-host lab in ${dir} …`);
    const lab = await startLab({ dir, hosts: 2, detached: false, privateNats: true, log: (l) => say(`  ${l}`) });
    say(`  coordinator ${lab.coordinator}, NATS ${lab.nats}${lab.natsStarted ? ' (started for the demo)' : ''}`);
    const ferry = new FerryClient(lab.coordinator);
    try {
      await bootGuest(ferry, 'host-1', settings);
      return await migrateGuest(ferry, 'host-1', 'host-2', settings);
    } finally {
      ferry.close();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
  }
}

async function demoOnCluster(coordinator: string, settings: DemoSettings): Promise<number> {
  say(`using the cluster of coordinator ${coordinator} …`);
  const ferry = new FerryClient(coordinator);
  try {
    const hosts = await readyHosts(ferry, 2);
    const guest = (await ferry.listDomains()).domains.find((d) => d.name === DEMO_DOMAIN && d.state === DomainState.DOMAIN_STATE_RUNNING);
    const source = guest?.host ?? hosts[0];
    const target = hosts.find((h) => h !== source)!;
    if (guest) say(`  ${DEMO_DOMAIN} already runs on ${source} (a previous demo): moving it on`);
    else await bootGuest(ferry, source, settings);
    return await migrateGuest(ferry, source, target, settings);
  } finally {
    ferry.close();
  }
}

/** Names of the ready hosts, sorted, once there are at least `count` (a cluster may still be starting). */
async function readyHosts(ferry: FerryClient, count: number): Promise<string[]> {
  const deadline = Date.now() + HOSTS_TIMEOUT_MS;
  for (let announced = false; ; announced = true) {
    const names = await ferry
      .listHosts()
      .then((list) => list.filter((h) => h.ready && h.host?.name).map((h) => h.host!.name).sort())
      .catch(() => [] as string[]);
    if (names.length >= count) return names;
    if (Date.now() > deadline) throw new Error(`the cluster has ${names.length} ready host(s) after ${HOSTS_TIMEOUT_MS / 1000} s; the demo needs ${count}`);
    if (!announced) say(`  waiting for ${count} ready hosts (${names.length} so far) …`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function bootGuest(ferry: FerryClient, host: string, settings: DemoSettings): Promise<void> {
  say(`booting a kv guest of ${settings.memory / 1048576} MiB (${settings.free * 100}% free) on ${host} …`);
  const d = await ferry.createDomain(host, {
    name: DEMO_DOMAIN,
    memoryBytes: settings.memory,
    workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: settings.seed, freeFraction: settings.free },
  });
  say(`  ${DEMO_DOMAIN} runs on ${host}, serving on ${d.serviceAddress}`);
}

async function migrateGuest(ferry: FerryClient, source: string, target: string, settings: DemoSettings): Promise<number> {
  say(`live-migrating ${DEMO_DOMAIN} from ${source} to ${target} with ${settings.policy}, a client writing to it all along …`);
  const result = await runMigrationSession(
    ferry,
    {
      domainName: DEMO_DOMAIN,
      targetHost: target,
      policy: settings.policy,
      options: { verify: true, bandwidthBps: settings.bandwidthBps },
    },
    { load: true, onEvent: (e) => { const l = describeEvent(e); if (l) say(`  ${l}`); } },
  );
  printSummary(result);
  const where = await ferry.listDomains();
  const now = where.domains.filter((x) => x.name === DEMO_DOMAIN).map((x) => x.host);
  say(`  ${DEMO_DOMAIN} now runs on: ${now.join(', ') || '(nowhere!)'}`);
  return result.summary.outcome === 'succeeded' ? 0 : 1;
}
