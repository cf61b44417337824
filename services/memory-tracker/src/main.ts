// The memory-tracker process (services/README.md): FERRY_LISTEN, the hypervisor driver from
// FERRY_DRIVER / FERRY_EMU_SOCKET; logs "ready" with its address once serving.

import { hostname } from 'node:os';
// connect.ts is not re-exported by @ferry/hypervisor's index (yet); import it by path.
import { connectDriverFromEnv } from '@ferry/hypervisor';
import { createLogger, env, onShutdownSignal } from '@ferry/runtime';
import { startMemoryTrackerServer } from './server';

async function main(): Promise<void> {
  const host = env('FERRY_HOST', hostname());
  const logger = createLogger('memory-tracker', { host });
  const driver = await connectDriverFromEnv();
  const server = await startMemoryTrackerServer({ address: env('FERRY_LISTEN', '127.0.0.1:0'), driver, logger });
  onShutdownSignal(logger, async () => {
    await server.stop();
    await driver.close();
  });
  logger.info({ address: server.address, driver: driver.kind }, 'ready');
}

main().catch((err: unknown) => {
  process.stderr.write(`memory-tracker: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
