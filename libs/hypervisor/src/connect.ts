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
  if (kind === 'xen') throw new Error('FERRY_DRIVER=xen: the native Xen driver is not built on this host (libxen-dev 4.17 headers are needed)');
  throw new Error(`FERRY_DRIVER must be "emulated" or "xen", got "${kind}"`);
}
