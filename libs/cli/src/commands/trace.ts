// `ferry trace record`: a dirty trace of an emulated guest, for `ferry sim --trace`.

import { writeFileSync } from 'node:fs';
import { recordTrace } from '@ferry/emu-host';
import type { RecordedTraceFile } from '@ferry/sim';
import { parseBytes } from '@ferry/runtime';
import { num, parse, UsageError } from '../args';
import { WORKLOAD_FLAGS, workloadFromFlags } from '../workload-flags';
import type { Command } from './command';

export const traceRecord: Command = {
  name: 'trace record',
  usage: 'trace record --out FILE [--workload kv] [--memory 256MiB] [--free 0.5] [--seconds 20] [--interval-ms 50] [--seed 1]',
  summary: 'record a guest\'s dirty pages (one CLEAN per interval) for the simulator',
  async run(argv) {
    const { values } = parse(argv, {
      ...WORKLOAD_FLAGS,
      out: { type: 'string' },
      memory: { type: 'string' },
      seconds: { type: 'string' },
      'interval-ms': { type: 'string' },
    });
    if (!values.out) throw new UsageError('--out FILE is required');
    const workload = workloadFromFlags(values);
    const t = await recordTrace({
      workload,
      memoryBytes: parseBytes(values.memory ?? '256MiB'),
      seconds: num(values.seconds, 'seconds', 20),
      intervalMs: num(values['interval-ms'], 'interval-ms', 50),
    });
    const file: RecordedTraceFile = {
      format: 'ferry-dirty-trace/v1',
      workload: workload.kind,
      pages: t.pages,
      p2m: Buffer.from(t.p2m).toString('base64'),
      freePages: t.freePages,
      intervalMs: t.intervalMs,
      bitmaps: t.bitmaps.map((b) => Buffer.from(b).toString('base64')),
    };
    writeFileSync(values.out, JSON.stringify(file));
    console.log(`recorded ${t.bitmaps.length} bitmaps of ${t.pages} pages every ${t.intervalMs} ms into ${values.out}`);
    return 0;
  },
};
