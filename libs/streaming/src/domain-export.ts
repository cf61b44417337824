// ExportDomain: a whole paused (or suspended) domain of this host written as one of Xen's own
// migration streams (@ferry/xen-stream) into a Writable: every pfn below max_pages in ascending
// order, populated ones as PAGE_DATA with their contents, the others as XTAB; then the vCPU
// state. Pages are read here, on the domain's host; only the stream's bytes leave it.
//
// The vCPU state becomes Xen's records where it is Xen's (the xen driver's context), or rides in
// the "ferry" section of the xl JSON config where it is not (the emulated driver's): see
// driver-state.ts. Only PVH guests: an HVM guest's device model (QEMU) state is not available.

import type { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { bitmapTest, HypervisorError, MAX_BATCH_PAGES, pagesToKiB, PAGE_SIZE, xsPaths, type DomainInfo, type HypervisorDriver } from '@ferry/hypervisor';
import { failedPrecondition, notFound, type Logger } from '@ferry/runtime';
import { RoundStreamAssembler, type DomainConfig, type StreamLayers, type StreamPage } from '@ferry/xen-stream';
import { streamStateOf, type StreamState } from './driver-state';
import { aborted } from './errors';

export interface ExportRequest {
  domid: number;
  layers: StreamLayers;
  /** Receives the stream; the export waits on its backpressure and ends it when done. */
  out: Writable;
  /** Aborts the export (the caller went away). */
  signal?: AbortSignal;
}

export interface ExportResult {
  streamBytes: number;
  /** Populated pages written with data. */
  pages: number;
  /** Pfns below max_pages written as XTAB. */
  unpopulatedPages: number;
  pageDataRecords: number;
  vcpuContextBytes: number;
  /** SHA-256 over the pages written, in MemoryDigest's definition. */
  memoryDigest: Buffer;
  elapsedMs: number;
}

export interface ExportDeps {
  driver: HypervisorDriver;
  hostName: string;
  logger: Logger;
}

export async function exportDomain(deps: ExportDeps, req: ExportRequest): Promise<ExportResult> {
  const started = performance.now();
  const { driver } = deps;
  const info = await requireStill(driver, req.domid);
  const host = await driver.hostInfo();
  const context = await driver.getVcpuContext(req.domid);
  const state = streamStateOf(context);
  if (state.guestType === 'hvm') {
    throw failedPrecondition('HVM_DEVICE_MODEL_UNSUPPORTED', `domain ${req.domid} is an HVM guest: its device model (QEMU) state is not available to Ferry, so only PVH guests can be exported`);
  }
  const config = await domainConfig(deps, info, state);
  const assembler = new RoundStreamAssembler(req.out, { layers: req.layers, config, xenVersion: host.xenVersion, ...(state.cpuPolicy ? { cpuPolicy: state.cpuPolicy } : {}) });
  const digest = createHash('sha256');
  const pfnBytes = Buffer.alloc(8);
  await assembler.begin();
  const p2m = await driver.p2m(req.domid);
  for (let start = 0; start < info.maxPages; start += MAX_BATCH_PAGES) {
    if (req.signal?.aborted) throw aborted('EXPORT_CANCELLED', `the export of domain ${req.domid} was cancelled`);
    const end = Math.min(start + MAX_BATCH_PAGES, info.maxPages);
    const populated: number[] = [];
    for (let pfn = start; pfn < end; pfn++) if (bitmapTest(p2m, pfn)) populated.push(pfn);
    const mapped = populated.length > 0 ? await driver.mapForeignPages(req.domid, populated) : null;
    try {
      const pages: StreamPage[] = [];
      let next = 0; // index into `populated`
      for (let pfn = start; pfn < end; pfn++) {
        if (next < populated.length && populated[next] === pfn) {
          const i = next++;
          if (mapped!.errors[i] === 0) {
            const data = mapped!.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
            pfnBytes.writeBigUInt64LE(BigInt(pfn));
            digest.update(pfnBytes);
            digest.update(data);
            pages.push({ pfn, data });
            continue;
          }
        }
        pages.push({ pfn, data: null });
      }
      await assembler.addPages(pages); // copies the data: the mapping can go
    } finally {
      mapped?.unmap();
    }
  }
  await assembler.endRound();
  // A domain unpaused while we read is not one consistent image: refuse rather than hand it out.
  await requireStill(driver, req.domid);
  const stats = await assembler.finish(state.finalState);
  await new Promise<void>((resolve, reject) => req.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  const result: ExportResult = {
    streamBytes: stats.bytes,
    pages: stats.dataPages,
    unpopulatedPages: stats.unpopulatedEntries,
    pageDataRecords: stats.pageDataRecords,
    vcpuContextBytes: context.byteLength,
    memoryDigest: digest.digest(),
    elapsedMs: Math.max(1, Math.round(performance.now() - started)),
  };
  deps.logger.info({ domid: req.domid, format: req.layers, ...result, memoryDigest: result.memoryDigest.toString('hex') }, 'domain exported');
  return result;
}

/** The domain, which must exist and not be running. */
async function requireStill(driver: HypervisorDriver, domid: number): Promise<DomainInfo> {
  const info = await driver.domainInfo(domid).catch((err: unknown) => {
    throw err instanceof HypervisorError && err.code === 'ESRCH' ? notFound('DOMAIN_NOT_FOUND', `domain ${domid} does not exist on this host`) : err;
  });
  if (info.state === 'running') {
    throw failedPrecondition('DOMAIN_RUNNING', `domain ${domid} is running; it must stay paused or suspended while it is exported`);
  }
  return info;
}

/** The xl header's config, from what the driver reports. */
async function domainConfig(deps: ExportDeps, info: DomainInfo, state: StreamState): Promise<DomainConfig> {
  // static-max and the balloon target from xenstore, as libxl records them (so the ballooned
  // size travels). Not max_pages: on Xen that is the p2m size, which reaches up to the special
  // pages near 4 GiB.
  const [staticMax, target] = await Promise.all([
    kibFromXenstore(deps.driver, xsPaths.memoryStaticMax(info.domid)),
    kibFromXenstore(deps.driver, xsPaths.memoryTarget(info.domid)),
  ]);
  const maxMemKiB = staticMax ?? pagesToKiB(info.maxPages);
  return {
    name: info.name,
    uuid: info.uuid,
    vcpus: Math.max(1, info.vcpus),
    maxMemKiB,
    targetMemKiB: Math.min(target ?? maxMemKiB, maxMemKiB),
    ferry: {
      driver: deps.driver.kind,
      maxPages: info.maxPages,
      ...(state.opaqueContext ? { vcpuContext: state.opaqueContext } : {}),
      writer: `ferry page-streamer on ${deps.hostName}`,
    },
  };
}

async function kibFromXenstore(driver: HypervisorDriver, path: string): Promise<number | undefined> {
  const kib = Number(await driver.xenstoreRead(path));
  return Number.isSafeInteger(kib) && kib > 0 ? kib : undefined;
}
