// A guest's vCPU: this worker thread maps the domain's shared memory, builds the platform, loads
// the guest kernel and boots it (new domain) or resumes it from a vCPU context (restored domain).

import { parentPort, workerData } from 'node:worker_threads';
import { DomainMemory } from '@ferry/hypervisor';
import type { GuestKernel } from '@ferry/guest/src/platform';
import type { GuestWorkerData, HostToWorker } from '../guest-messages';
import { HostMemory } from '../host-memory';
import { WorkerPlatform } from './worker-platform';

function loadKernel(moduleName: string): GuestKernel {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(moduleName) as { createKernel?: () => GuestKernel };
  if (typeof mod.createKernel !== 'function') {
    throw new Error(`guest kernel module ${moduleName} does not export createKernel()`);
  }
  return mod.createKernel();
}

function main(): void {
  if (!parentPort) throw new Error('the guest bootstrap must run in a worker thread');
  const port = parentPort;
  const data = workerData as GuestWorkerData;
  const memory = DomainMemory.open(data.names);
  const host = HostMemory.attach(data.hostMemory, data.hostTotalPages);
  const platform = new WorkerPlatform(data.domid, memory, host, new Int32Array(data.vcpuSync), port);
  const kernel = loadKernel(data.kernelModule); // a throw here reaches the host as the worker's error
  const resume = (context: Uint8Array) => kernel.resume(platform, context).catch((err: unknown) => platform.crash(err));
  port.on('message', (message: HostToWorker) => {
    if (message.type === 'resume') void resume(message.context);
    else platform.handleMessage(message);
  });
  platform.attachKernel(kernel);
  port.postMessage({ type: 'online' });
  if (data.mode === 'standby') return; // the host sends 'resume' at the first unpause
  let run: Promise<void>;
  try {
    if (data.mode === 'boot') {
      if (!data.workload) throw new Error('boot needs a workload');
      run = kernel.boot(platform, data.workload);
    } else {
      if (!data.context) throw new Error('resume needs a vCPU context');
      run = kernel.resume(platform, data.context);
    }
  } catch (err) {
    run = Promise.reject(err);
  }
  run.catch((err: unknown) => platform.crash(err));
}

main();
