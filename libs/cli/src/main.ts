// The `ferry` command-line program. Each subcommand lives in ./commands and returns an exit code.

import { FerryClientError } from '@ferry/client';
import { UsageError } from './args';
import { COMMANDS } from './commands';

const USAGE = `ferry — live migration of running Xen domains

Usage: ferry <command> [options]

${COMMANDS.map((c) => `  ${c.usage.padEnd(52)} ${c.summary}`).join('\n')}

Run "ferry <command> --help" for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    console.log(USAGE);
    return first === undefined ? 2 : 0;
  }
  // Commands are one word ("migrate") or two ("lab up").
  const two = COMMANDS.find((c) => c.name === `${first} ${second}`);
  const cmd = two ?? COMMANDS.find((c) => c.name === first);
  if (!cmd) {
    console.error(`ferry: unknown command "${first}"\n\n${USAGE}`);
    return 2;
  }
  const args = two ? rest : argv.slice(1);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`Usage: ferry ${cmd.usage}\n\n${cmd.summary}\n${cmd.help ?? ''}`);
    return 0;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`ferry ${cmd.name}: ${err.message}\nUsage: ferry ${cmd.usage}`);
      return 2;
    }
    if (err instanceof FerryClientError) {
      // The gRPC status and Ferry's machine-readable reason, then the message.
      console.error(`ferry ${cmd.name}: ${err.codeName}${err.reason ? ` ${err.reason}` : ''}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
