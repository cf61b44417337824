// `ferry demo` (npm start): a two-host lab, a kv guest under client load, one live migration with
// the best policy, a readable summary, and a clean shutdown.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryClient } from '@ferry/client';
import { startLab, stopLab } from '@ferry/lab';
import { WorkloadKind } from '@ferry/proto';
import { parseBandwidthBits, parseBytes } from '@ferry/runtime';
import { num, parse } from '../args';
import { runMigrationSession } from '../migration-session';
import { describeEvent } from '../progress';
import { printSummary } from './migrate';
import type { Command } from './command';

export const demo: Command = {
  name: 'demo',
  usage: 'demo [--memory 256MiB] [--free 0.5] [--policy layered] [--bandwidth 1gbit] [--keep]',
  summary: 'start a two-host lab, live-migrate a kv guest under load, print what happened, stop',
  async run(argv) {
    const { values } = parse(argv, {
      memory: { type: 'string' },
      free: { type: 'string' },
      policy: { type: 'string' },
      bandwidth: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean' },
    });
    const policy = (values.policy ?? 'layered') as 'xen-4.17' | 'xen-legacy' | 'layered';
    const dir = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
    const say = (s: string) => console.log(s);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      say('stopping the lab…');
      await stopLab(dir);
      if (!values.keep) rmSync(dir, { recursive: true, force: true });
    };
    const onSignal = () => void stop().finally(() => process.exit(130));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      say(`starting a two-host lab in ${dir} …`);
      const lab = await startLab({ dir, hosts: 2, detached: false, log: (l) => say(`  ${l}`) });
      say(`  coordinator ${lab.coordinator}, NATS ${lab.nats}${lab.natsStarted ? ' (started for the demo)' : ''}`);
      const ferry = new FerryClient(lab.coordinator);
      try {
        const memory = parseBytes(values.memory ?? '256MiB');
        const free = num(values.free, 'free', 0.5);
        say(`booting a kv guest of ${memory / 1048576} MiB (${free * 100}% free) on host-1 …`);
        const d = await ferry.createDomain('host-1', {
          name: 'demo-kv',
          memoryBytes: memory,
          workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: num(values.seed, 'seed', 1), freeFraction: free },
        });
        say(`  demo-kv runs on host-1, serving on ${d.serviceAddress}`);
        say(`live-migrating demo-kv to host-2 with ${policy}, a client writing to it all along …`);
        const result = await runMigrationSession(
          ferry,
          {
            domainName: 'demo-kv',
            targetHost: 'host-2',
            policy,
            options: { verify: true, bandwidthBps: parseBandwidthBits(values.bandwidth ?? '1gbit') },
          },
          { load: true, onEvent: (e) => { const l = describeEvent(e); if (l) say(`  ${l}`); } },
        );
        printSummary(result);
        const where = await ferry.listDomains();
        const now = where.domains.filter((x) => x.name === 'demo-kv').map((x) => x.host);
        say(`  demo-kv now runs on: ${now.join(', ') || '(nowhere!)'}`);
        return result.summary.outcome === 'succeeded' ? 0 : 1;
      } finally {
        ferry.close();
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stop();
    }
  },
};
