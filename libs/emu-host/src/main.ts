// Process entry of an emulated Xen host:
//   node --import tsx libs/emu-host/src/main.ts --name H --dir D --capacity 8GiB
//        [--kernel MODULE] [--exit-with-stdin]
// See run-host.ts for what it does and how it stops.

import { parseArgs } from 'node:util';
import { parseByteSize } from './byte-size';
import { runEmuHostMain } from './run-host';

const USAGE = 'usage: main.ts --name H --dir D --capacity SIZE [--kernel MODULE] [--exit-with-stdin]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      name: { type: 'string' },
      dir: { type: 'string' },
      capacity: { type: 'string' },
      kernel: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.name || !values.dir || !values.capacity) throw new Error(USAGE);
  await runEmuHostMain({
    name: values.name,
    dir: values.dir,
    capacityBytes: parseByteSize(values.capacity),
    kernelModule: values.kernel,
    exitWithStdin: values['exit-with-stdin'],
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`emu-host: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
