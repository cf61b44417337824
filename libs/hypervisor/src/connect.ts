// Which driver a per-host service uses, from its environment (see services/README.md).

import type { HypervisorDriver } from './driver';
import { connectEmulatedDriver } from './emulated/driver';

export async function connectDriverFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<HypervisorDriver> {
  const kind = env.FERRY_DRIVER ?? 'emulated';
  if (kind === 'emulated') {
    const socket = env.FERRY_EMU_SOCKET;
    if (!socket) throw new Error('FERRY_EMU_SOCKET must name the emulated Xen host socket when FERRY_DRIVER=emulated');
    return connectEmulatedDriver(socket);
  }
  if (kind === 'xen') return connectXenDriverFromEnv(env);
  throw new Error(`FERRY_DRIVER must be "emulated" or "xen", got "${kind}"`);
}

/**
 * The native driver is loaded only when asked for: most hosts run the emulated driver and never
 * build the addon. Its errors (not a dom0, addon not built, libraries missing) keep their own
 * words behind a "FERRY_DRIVER=xen:" prefix.
 */
async function connectXenDriverFromEnv(env: NodeJS.ProcessEnv): Promise<HypervisorDriver> {
  let xen: typeof import('@ferry/xen-driver');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    xen = require('@ferry/xen-driver') as typeof import('@ferry/xen-driver');
  } catch (err) {
    throw new Error(`FERRY_DRIVER=xen: the @ferry/xen-driver package cannot be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return await xen.connectXenDriver({ addonPath: env.FERRY_XEN_ADDON || undefined, hostName: env.FERRY_HOST || undefined });
  } catch (err) {
    const message = `FERRY_DRIVER=xen: ${err instanceof Error ? err.message : String(err)}`;
    if (err instanceof Error) {
      err.message = message;
      throw err;
    }
    throw new Error(message);
  }
}
