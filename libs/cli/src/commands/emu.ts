// `ferry emu host` runs one emulated Xen host in this process; `ferry emu probe` measures a guest.

import { parse, num, UsageError } from '../args';
import type { Command } from './command';
import { parseBytes } from '@ferry/runtime';
import { runEmuHostMain, runProbe } from '@ferry/emu-host';
import { WORKLOAD_FLAGS, workloadFromFlags } from '../workload-flags';

export const emuHost: Command = {
  name: 'emu host',
  usage: 'emu host --name H --dir D [--capacity 8GiB]',
  summary: 'run one emulated Xen host (the lab starts these)',
  async run(argv) {
    const { values } = parse(argv, { name: { type: 'string' }, dir: { type: 'string' }, capacity: { type: 'string' } });
    if (!values.name || !values.dir) throw new UsageError('--name and --dir are required');
    await runEmuHostMain({ name: values.name, dir: values.dir, capacityBytes: parseBytes(values.capacity ?? '8GiB') });
    return 0;
  },
};

export const emuProbe: Command = {
  name: 'emu probe',
  usage: 'emu probe [--workload kv] [--memory 128MiB] [--free 0.5] [--seconds 5] [--seed N] [--json]',
  summary: 'run one guest on an emulated host and measure its memory behaviour',
  help: `
Starts an emulated Xen host, boots one domain running the workload, CLEANs its dirty bitmap once a
second, sets the balloon target to used memory + 10% after two seconds and waits for it, then prints
populated and free pages, the dirty rate, unique dirty pages, the balloon result and the workload's
own counters. Workload knobs: --write-rate N, --hot-set F, --zipf S, --phase-seconds S,
--pattern sequential|random (memtest).`,
  async run(argv) {
    const { values } = parse(argv, { ...WORKLOAD_FLAGS, memory: { type: 'string' }, seconds: { type: 'string' }, json: { type: 'boolean' } });
    const result = await runProbe({
      workload: workloadFromFlags(values),
      memoryBytes: parseBytes(values.memory ?? '128MiB'),
      seconds: num(values.seconds, 'seconds', 5),
    });
    if (values.json) console.log(JSON.stringify(result));
    else console.log(JSON.stringify(result, null, 2));
    return 0;
  },
};
