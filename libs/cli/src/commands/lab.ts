// `ferry lab up|status|down`: a local cluster of separate OS processes (see libs/lab).

import { labDir, labProcessStatus, readLabState, startLab, stopLab } from '@ferry/lab';
import { parseBytes } from '@ferry/runtime';
import { num, parse } from '../args';
import type { Command } from './command';

export const labUp: Command = {
  name: 'lab up',
  usage: 'lab up [--hosts 2] [--capacity 4GiB] [--dir .ferry/lab]',
  summary: 'start a local cluster: NATS (if none is reachable), N emulated hosts with their services, the coordinator',
  help: `
Every process runs in the background with its log in <dir>/logs. NATS_URL names an existing NATS
server (with JetStream) to use; otherwise the one at nats://127.0.0.1:4222 if it answers, else the
lab starts nats-server itself. OTEL_* variables are passed on to every service.`,
  async run(argv) {
    const { values } = parse(argv, { hosts: { type: 'string' }, capacity: { type: 'string' }, dir: { type: 'string' }, json: { type: 'boolean' } });
    const hosts = num(values.hosts, 'hosts', 2);
    const state = await startLab({
      dir: labDir(values.dir),
      hosts,
      capacityBytes: parseBytes(values.capacity ?? '4GiB'),
      detached: true,
      log: (line) => process.stderr.write(`lab: ${line}\n`),
    });
    if (values.json) {
      console.log(JSON.stringify({ dir: state.dir, coordinator: state.coordinator, nats: state.nats, hosts: state.hosts }));
    } else {
      console.log(`lab up in ${state.dir}`);
      console.log(`  coordinator  ${state.coordinator}`);
      console.log(`  nats         ${state.nats}${state.natsStarted ? ' (started by the lab)' : ''}`);
      for (const h of state.hosts) console.log(`  ${h.name.padEnd(12)} host-agent ${h.hostAgent}`);
      console.log(`Try: npx ferry domain create --host host-1 --name vm1 --workload kv --memory 256MiB --free 0.5`);
    }
    return 0;
  },
};

export const labStatus: Command = {
  name: 'lab status',
  usage: 'lab status [--dir .ferry/lab] [--json]',
  summary: 'show the local cluster and whether each process is alive',
  async run(argv) {
    const { values } = parse(argv, { dir: { type: 'string' }, json: { type: 'boolean' } });
    const state = readLabState(values.dir);
    if (!state) {
      if (values.json) console.log(JSON.stringify({ running: false, dir: labDir(values.dir), coordinator: null, hosts: [], nats: null }));
      else console.log(`no lab in ${labDir(values.dir)} (ferry lab up)`);
      return values.json ? 0 : 1;
    }
    const processes = labProcessStatus(state);
    const running = processes.length > 0 && processes.every((p) => p.alive);
    if (values.json) {
      console.log(JSON.stringify({ running, dir: state.dir, coordinator: state.coordinator, nats: state.nats, hosts: state.hosts, processes }));
      return 0;
    }
    console.log(`lab in ${state.dir}: ${running ? 'running' : processes.length === 0 ? 'stopped' : 'DEGRADED'}`);
    console.log(`  coordinator  ${state.coordinator}`);
    console.log(`  nats         ${state.nats}`);
    for (const p of processes) console.log(`  ${p.alive ? 'up  ' : 'DOWN'} ${p.name.padEnd(28)} pid ${String(p.pid).padEnd(8)} ${p.logFile}`);
    return running ? 0 : 1;
  },
};

export const labDown: Command = {
  name: 'lab down',
  usage: 'lab down [--dir .ferry/lab]',
  summary: 'stop every process the lab started',
  async run(argv) {
    const { values } = parse(argv, { dir: { type: 'string' } });
    const { stopped } = await stopLab(values.dir);
    console.log(stopped > 0 ? `stopped ${stopped} processes` : 'nothing was running');
    return 0;
  },
};
