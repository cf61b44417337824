// Benchmark (not a test): page-streamer throughput between two emulated hosts on loopback, with
// the real service processes (a memory-tracker and a page-streamer on host A, a page-streamer on
// host B), through the gRPC control API and the raw TCP data plane.
//
//   node --import tsx libs/streaming/bench/throughput.ts [--memory 512MiB] [--repeat 3]
//        [--compression none|zlib] [--free 0.02] [--json]
//
// A memtest guest of --memory on host A (almost every page holds data; paused during the
// measurement so it does not compete for the CPU) is sent as round 0 (every populated page) into a
// fresh receiving domain on host B, --repeat times (cold: the target populates every page), then
// the same round once more into the last, already populated, domain (warm). Figures: MB/s of wire
// bytes (10^6 bytes per second) from the sender's own elapsed time, from reading the send set until
// the receiver acknowledged the end of the round.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { parseByteSize, spawnEmuHost, type EmuHostProcess } from '@ferry/emu-host';
import { bitmapCount, connectEmulatedDriver, PAGE_SIZE, type EmulatedDriver } from '@ferry/hypervisor';
import { spawnProcess, stopProcess, type SpawnedProcess } from '@ferry/lab';
import { MemoryTrackerClient, MigrationPolicy, PageStreamerClient, PayloadCompression, type SendRoundResponse } from '@ferry/proto';
import { call, GRPC_MESSAGE_LIMITS } from '@ferry/runtime';

interface Sample {
  target: 'cold' | 'warm';
  pages: number;
  zero_pages: number;
  wire_bytes: number;
  elapsed_ms: number;
  mb_per_s: number;
}

function sample(target: Sample['target'], r: SendRoundResponse): Sample {
  const wire = Number(r.wireBytes);
  const ms = Number(r.elapsedMs);
  return { target, pages: Number(r.pagesSent), zero_pages: Number(r.zeroPages), wire_bytes: wire, elapsed_ms: ms, mb_per_s: Math.round((wire / ms / 1000) * 10) / 10 };
}

/** Waits (with log-dirty on) until the unthrottled writer has written `want` distinct pages. */
async function fillWithData(driver: EmulatedDriver, domid: number, want: number): Promise<void> {
  const seen = new Uint8Array(Math.ceil((await driver.domainInfo(domid)).maxPages / 8));
  await driver.logDirtyEnable(domid);
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      const { bitmap } = await driver.logDirtyClean(domid);
      for (let i = 0; i < seen.length; i++) seen[i] |= bitmap[i];
      if (bitmapCount(seen) >= want) return;
      if (Date.now() > deadline) throw new Error(`the guest wrote only ${bitmapCount(seen)} of ${want} pages in 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await driver.logDirtyDisable(domid);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      memory: { type: 'string', default: '512MiB' },
      repeat: { type: 'string', default: '3' },
      compression: { type: 'string', default: 'none' },
      free: { type: 'string', default: '0.02' },
      json: { type: 'boolean', default: false },
    },
  });
  const memoryBytes = parseByteSize(values.memory);
  const pages = Math.floor(memoryBytes / PAGE_SIZE);
  const repeat = Math.max(1, Number(values.repeat));
  const compression = values.compression === 'zlib' ? PayloadCompression.PAYLOAD_COMPRESSION_ZLIB : PayloadCompression.PAYLOAD_COMPRESSION_NONE;
  const log = (line: string) => {
    if (!values.json) process.stderr.write(`${line}\n`);
  };

  const dir = mkdtempSync(join(tmpdir(), 'ferry-stream-bench-'));
  const hosts: EmuHostProcess[] = [];
  const drivers: EmulatedDriver[] = [];
  const services: SpawnedProcess[] = [];
  const clients: { close(): void }[] = [];
  try {
    for (const name of ['bench-a', 'bench-b']) {
      const host = await spawnEmuHost({ name, dir: join(dir, name), capacityBytes: memoryBytes * 2 + 256 * 1024 * 1024 });
      hosts.push(host);
      drivers.push(await connectEmulatedDriver(host.socketPath));
    }
    const [a, b] = drivers;
    const service = async (name: string, host: string, socket: string, env: Record<string, string> = {}) => {
      const p = await spawnProcess({
        name: `${host}/${name}`,
        entry: `services/${name}/src/main.ts`,
        logFile: join(dir, `${host}.${name}.log`),
        detached: false,
        env: { FERRY_HOST: host, FERRY_EMU_SOCKET: socket, FERRY_LOG_LEVEL: 'info', ...env },
      });
      services.push(p);
      return String(p.ready.address);
    };
    const trackerAddress = await service('memory-tracker', 'bench-a', hosts[0].socketPath);
    const sourceAddress = await service('page-streamer', 'bench-a', hosts[0].socketPath, { FERRY_MEMORY_TRACKER: trackerAddress });
    const targetAddress = await service('page-streamer', 'bench-b', hosts[1].socketPath);
    const tracker = new MemoryTrackerClient(trackerAddress, credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
    const source = new PageStreamerClient(sourceAddress, credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
    const target = new PageStreamerClient(targetAddress, credentials.createInsecure(), GRPC_MESSAGE_LIMITS);
    clients.push(tracker, source, target);

    log(`booting a ${values.memory} memtest guest on bench-a and letting it write its memory`);
    const domid = await a.createDomain({
      name: 'payload',
      maxPages: pages,
      workload: { kind: 'memtest', seed: 9, freeFraction: Number(values.free), writeRate: 0, pattern: 'sequential' },
    });
    await fillWithData(a, domid, Math.floor(pages * (1 - Number(values.free)) * 0.9));
    await a.pause(domid);

    const samples: Sample[] = [];
    let targetDomid = 0;
    for (let i = 0; i <= repeat; i++) {
      const warm = i === repeat;
      const fence = { migrationId: `bench-${i}`, epoch: 1n };
      const token = randomBytes(16).toString('hex');
      if (!warm) targetDomid = await b.createRestoreDomain({ name: `payload-${i}`, maxPages: pages, vcpus: 1 });
      const opened = await call(target.openReceiveSession, target, { fence, domid: targetDomid, token });
      await call(tracker.startTracking, tracker, { fence, domid, policy: { policy: MigrationPolicy.MIGRATION_POLICY_XEN_4_17 } });
      await call(tracker.prepareRound, tracker, { fence, round: 0, final: false, takeSendSet: false });
      const result = await call(
        source.sendRound,
        source,
        { fence, round: 0, domid, peerEndpoint: opened.dataEndpoint, token, bandwidthBps: 0n, compression, sendZeroPages: false, includeState: false, prepareFinal: false },
        600_000,
      );
      const s = sample(warm ? 'warm' : 'cold', result);
      samples.push(s);
      log(`round 0 into a ${s.target} domain: ${s.pages} pages (${s.zero_pages} zero), ${s.wire_bytes} wire bytes in ${s.elapsed_ms} ms: ${s.mb_per_s} MB/s`);
      await call(tracker.stopTracking, tracker, { fence });
      await call(target.closeSession, target, { fence });
      if (i < repeat - 1) await b.destroy(targetDomid);
    }
    const cold = samples.filter((s) => s.target === 'cold').map((s) => s.mb_per_s).sort((x, y) => x - y);
    const summary = {
      memory: values.memory,
      compression: values.compression,
      cold_median_mb_per_s: cold[Math.floor(cold.length / 2)],
      warm_mb_per_s: samples[samples.length - 1].mb_per_s,
      samples,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else log(`median (cold target): ${summary.cold_median_mb_per_s} MB/s; warm target: ${summary.warm_mb_per_s} MB/s`);
  } finally {
    for (const c of clients) c.close();
    for (const s of services.reverse()) await stopProcess(s.pid);
    for (const d of drivers) await d.close().catch(() => undefined);
    for (const h of hosts) await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`throughput: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
