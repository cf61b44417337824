// A guest kernel built without a balloon driver (a Linux without CONFIG_XEN_BALLOON): the stock
// emulated guest, except that memory/target never reaches it. It boots, runs its workload and
// reports its free memory like any guest, but never hands a page back. The emulated host loads it
// with --kernel (spawnEmuHost's kernelModule), so a compaction that cannot succeed is real.

import { createKernel as createFerryKernel } from '@ferry/guest';
import type { GuestKernel, GuestPlatform, GuestXenstore } from '@ferry/guest';

export function createKernel(): GuestKernel {
  const kernel = createFerryKernel();
  return {
    boot: (platform, workload) => kernel.boot(withoutBalloon(platform), workload),
    resume: (platform, context) => kernel.resume(withoutBalloon(platform), context),
    saveContext: () => kernel.saveContext(),
    halt: () => kernel.halt(),
  };
}

function withoutBalloon(platform: GuestPlatform): GuestPlatform {
  const inner = platform.xenstore;
  const xenstore: GuestXenstore = {
    read: (path) => inner.read(path),
    write: (path, value) => inner.write(path, value),
    watch: (path, onChange) => {
      if (path === 'memory/target') return; // no balloon driver listens
      inner.watch(path, onChange);
    },
  };
  return new Proxy(platform, {
    get(target, property) {
      if (property === 'xenstore') return xenstore;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
