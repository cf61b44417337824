import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkloadSpec } from '@ferry/hypervisor';
import { bootGuest, waitForProgress } from './support/guest-harness';

const specs: WorkloadSpec[] = [
  { kind: 'kv', seed: 11, freeFraction: 0.5 },
  { kind: 'web', seed: 12, freeFraction: 0.4 },
  { kind: 'db', seed: 13, freeFraction: 0.3 },
  { kind: 'compile', seed: 14, freeFraction: 0.4 },
  { kind: 'memtest', seed: 15, freeFraction: 0.5, pattern: 'random' },
  { kind: 'memtest', seed: 16, freeFraction: 0.5, pattern: 'sequential', hotSetFraction: 0.25, phaseSeconds: 1 },
  { kind: 'idle', seed: 17, freeFraction: 0.9 },
];

describe('workloads', { timeout: 120_000 }, () => {
  // All at once: each waits for two reports (about 2 s), so running them together keeps this short.
  it('each boots into its share of memory, makes progress, reports and finds no errors', async (t) => {
    const guests = await Promise.all(specs.map((spec) => bootGuest(spec, 4096)));
    t.after(() => Promise.all(guests.map((g) => g.kernel.halt())));
    const reports = await Promise.all(guests.map((g) => waitForProgress(g.platform)));
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i];
      const { platform, kernel } = guests[i];
      const report = reports[i];
      assert.equal(report.kind, spec.kind);
      assert.equal(report.errors, 0, `${spec.kind}: errors in ${JSON.stringify(report)}`);
      assert.equal(kernel.guest!.verifyAll(), 0, `${spec.kind}: a full check finds no bad data`);
      assert.equal(kernel.guest!.os.errors, 0);
      // Used memory is about (1 - freeFraction) of the guest.
      const freeKiB = Number(platform.xenstore.values.get('data/meminfo_free'));
      const totalKiB = Number(platform.xenstore.values.get('data/meminfo_total'));
      assert.equal(totalKiB, 4096 * 4);
      const free = freeKiB / totalKiB;
      assert.ok(Math.abs(free - spec.freeFraction) < 0.1, `${spec.kind}: free ${free.toFixed(3)} vs ${spec.freeFraction}`);
      assert.equal(platform.xenstore.values.get('control/feature-suspend'), '1');
      assert.equal(platform.shutdownReason, null);
    }
    const memtest = reports[4];
    assert.ok(memtest.ops > 32_768, `memtest writes faster than a 1 Gbit/s link: ${memtest.ops} page writes in its first second(s)`);
  });

  it('counts corruption: a page scribbled over behind the guest is found', async (t) => {
    for (const spec of specs) {
      const { platform, kernel } = await bootGuest(spec, 2048);
      t.after(() => kernel.halt());
      // Scribble over every page the workload owns except the kernel's and its headers: anything
      // the self-checks cover must then fail.
      const g = kernel.guest!;
      const reserved = g.os.layout.reservedEnd;
      let scribbled = 0;
      for (let pfn = reserved; pfn < 2048; pfn++) {
        if (g.os.allocator.isFree(pfn)) continue;
        const bytes = platform.pageBytes(pfn);
        // Leave region directories and headers alone (their magic/first words), corrupt the rest.
        for (let i = 64; i < 4096; i += 64) bytes[i] ^= 0x5a;
        scribbled++;
      }
      assert.ok(scribbled > 0);
      assert.ok(g.verifyAll() > 0, `${spec.kind}: corruption is detected`);
      assert.ok(g.os.errors > 0);
      await kernel.halt();
    }
  });
});
