// `ferry export <domain> --out FILE`: writes a whole domain (emulated or Xen) as one of Xen's own
// migration streams, by default an `xl save` file that Xen's verify-stream-v2 and `xl restore`
// read. The domain is paused through the host agent of its host, its page streamer reads every
// page there and streams the file's bytes back (bulk data never passes the coordinator), and the
// domain is unpaused afterwards (a domain that was not running is left as it was).
//
// `ferry export --inspect FILE` reads such a file back and summarises it.

import { createReadStream } from 'node:fs';
import { access, constants, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { credentials } from '@grpc/grpc-js';
import { FerryClientError, toClientError, type FerryClient } from '@ferry/client';
import {
  DomainState,
  HostAgentClient,
  PageStreamerClient,
  XenStreamFormat,
  type Domain,
  type ExportDomainResponse,
  type ExportSummary,
} from '@ferry/proto';
import { call, formatBytes } from '@ferry/runtime';
import { readDomainImage, type DomainImage, type StreamLayers } from '@ferry/xen-stream';
import { parse, UsageError } from '../args';
import { connect, COORDINATOR_FLAGS } from '../coordinator';
import type { Command } from './command';

const FORMATS: Record<StreamLayers, XenStreamFormat> = {
  xl: XenStreamFormat.XEN_STREAM_FORMAT_XL,
  libxl: XenStreamFormat.XEN_STREAM_FORMAT_LIBXL,
  libxc: XenStreamFormat.XEN_STREAM_FORMAT_LIBXC,
};

/** A failure explained for the operator; the command prints it and exits 1. */
class ExportFailure extends Error {}

export const exportDomain: Command = {
  name: 'export',
  usage: 'export <domain> --out FILE [--format xl|libxl|libxc] [--json]',
  summary: 'write a domain as a Xen migration stream (an xl save file); --inspect FILE reads one back',
  help: `
--out FILE      where to write the stream (written beside it first, and renamed once complete, so a
                failed export leaves no partial file and an existing FILE untouched)
--format        xl (default: what "xl save" writes: xl header + JSON config + libxl + libxc streams),
                libxl (the libxl stream v2 alone) or libxc (the libxc stream v3 alone)
--host H        the domain's host, when the name alone is ambiguous
--inspect FILE  read a stream file back: records, pages, config, vCPU state, memory digest
                (ferry export --inspect FILE [--json])
--json          print one JSON object
The domain is paused while its pages are read, then unpaused; a domain that was not running
before (paused, suspended) is left as it was.
A domain that a migration holds cannot be exported until the migration has ended.
Check a file with Xen's own verifier: verify-stream-v2 -f xl -i FILE (xen-utils-4.17).
Exit status: 0 on success, 1 on failure, 2 on a usage error.`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      ...COORDINATOR_FLAGS,
      out: { type: 'string' },
      format: { type: 'string' },
      host: { type: 'string' },
      inspect: { type: 'string' },
      json: { type: 'boolean' },
    });
    try {
      if (values.inspect !== undefined) {
        if (positionals.length > 0 || values.out) throw new UsageError('--inspect FILE takes no domain and no --out');
        const image = await inspect(values.inspect);
        if (values.json) console.log(JSON.stringify(imageJson(values.inspect, image)));
        else printImage(values.inspect, image);
        return 0;
      }
      const name = positionals[0];
      if (!name || positionals.length > 1) throw new UsageError('name exactly one domain');
      if (!values.out) throw new UsageError('--out FILE is required');
      const layers = (values.format ?? 'xl') as StreamLayers;
      if (!Object.hasOwn(FORMATS, layers)) throw new UsageError(`unknown --format "${values.format}" (xl, libxl or libxc)`);
      const ferry = connect(values);
      try {
        const r = await exportToFile(ferry, { name, host: values.host, out: values.out, layers });
        if (values.json) console.log(JSON.stringify(r));
        else {
          console.log(`exported ${r.domain} (${r.host}, domid ${r.domid}) to ${r.file} as an ${r.format} stream of ${formatBytes(r.stream_bytes)}`);
          console.log(`  pages          ${r.pages} with data, ${r.unpopulated_pages} unpopulated (XTAB), in ${r.page_data_records} PAGE_DATA records`);
          console.log(`  vCPU state     ${r.vcpu_context_bytes} bytes`);
          console.log(`  memory digest  ${r.memory_digest}`);
          console.log(`  paused for     ${r.paused_ms} ms${r.left_paused ? ' (the domain was not running before: it is left as it was)' : ''}`);
        }
        return 0;
      } finally {
        ferry.close();
      }
    } catch (err) {
      if (err instanceof UsageError) throw err;
      console.error(`ferry export: ${describeError(err)}`);
      return 1;
    }
  },
};

interface ExportReport {
  domain: string;
  host: string;
  domid: number;
  file: string;
  format: StreamLayers;
  stream_bytes: number;
  pages: number;
  unpopulated_pages: number;
  page_data_records: number;
  vcpu_context_bytes: number;
  memory_digest: string;
  paused_ms: number;
  left_paused: boolean;
}

async function exportToFile(ferry: FerryClient, opts: { name: string; host?: string; out: string; layers: StreamLayers }): Promise<ExportReport> {
  const domain = await findDomain(ferry, opts.name, opts.host);
  const endpoints = (await ferry.listHosts()).find((h) => h.host?.name === domain.host)?.host?.endpoints;
  if (!endpoints?.hostAgent || !endpoints.pageStreamer) throw new ExportFailure(`host ${domain.host} of domain "${opts.name}" is not registered with its services`);
  const partial = await openPartial(opts.out);
  const agent = new HostAgentClient(endpoints.hostAgent, credentials.createInsecure());
  const streamer = new PageStreamerClient(endpoints.pageStreamer, credentials.createInsecure());
  const pauseByUs = domain.state === DomainState.DOMAIN_STATE_RUNNING;
  const started = Date.now();
  let summary: ExportSummary | undefined;
  try {
    if (pauseByUs) {
      await call(agent.pauseDomain, agent, { domid: domain.domid }).catch((err: unknown) => {
        throw new ExportFailure(`cannot pause domain "${opts.name}" on ${domain.host}: ${describeError(err)}`);
      });
    }
    summary = await copyStream(streamer, domain.domid, FORMATS[opts.layers], partial.handle);
  } finally {
    // Unpause even when the export failed: the guest must not stay stopped because of us.
    if (pauseByUs) {
      await call(agent.unpauseDomain, agent, { domid: domain.domid }).catch((err: unknown) => {
        console.error(`ferry export: could not unpause domain "${opts.name}" (domid ${domain.domid}) on ${domain.host}: ${describeError(err)}`);
      });
    }
    agent.close();
    streamer.close();
    await partial.handle.close().catch(() => undefined);
    if (!summary) await unlink(partial.path).catch(() => undefined);
  }
  const pausedMs = Date.now() - started;
  await rename(partial.path, opts.out).catch(async (err: Error) => {
    await unlink(partial.path).catch(() => undefined);
    throw new ExportFailure(`cannot write ${opts.out}: ${err.message}`);
  });
  return {
    domain: domain.name,
    host: domain.host,
    domid: domain.domid,
    file: opts.out,
    format: opts.layers,
    stream_bytes: Number(summary.streamBytes),
    pages: Number(summary.pages),
    unpopulated_pages: Number(summary.unpopulatedPages),
    page_data_records: Number(summary.pageDataRecords),
    vcpu_context_bytes: Number(summary.vcpuContextBytes),
    memory_digest: summary.memoryDigest.toString('hex'),
    paused_ms: pausedMs,
    left_paused: !pauseByUs,
  };
}

/**
 * The file the stream is written to first, beside `out`: checked before the domain is paused, so
 * an unwritable destination fails fast, and renamed over `out` only once the stream is complete.
 */
async function openPartial(out: string): Promise<{ path: string; handle: FileHandle }> {
  const existing = await stat(out).catch(() => null);
  if (existing?.isDirectory()) throw new ExportFailure(`cannot write ${out}: it is a directory`);
  if (existing) {
    await access(out, constants.W_OK).catch((err: Error) => {
      throw new ExportFailure(`cannot write ${out}: ${err.message}`);
    });
  }
  const path = `${out}.partial-${process.pid}`;
  const handle = await open(path, 'wx').catch((err: Error) => {
    throw new ExportFailure(`cannot write ${out}: ${err.message}`);
  });
  return { path, handle };
}

/** The one domain of that name (on that host), not held by a migration. */
async function findDomain(ferry: FerryClient, name: string, host?: string): Promise<Domain> {
  const all = (await ferry.listDomains(host ?? '')).domains.filter((d) => d.name === name);
  if (all.length === 0) throw new ExportFailure(`no domain named "${name}"${host ? ` on ${host}` : ''} (ferry domains lists them)`);
  const migrating = all.find((d) => d.migrationId);
  if (migrating) {
    throw new ExportFailure(`domain "${name}" is being migrated (migration ${migrating.migrationId}); export it once the migration has ended (ferry watch ${migrating.migrationId})`);
  }
  if (all.length > 1) throw new ExportFailure(`${all.length} domains are named "${name}" (on ${all.map((d) => d.host).join(', ')}); pick one with --host`);
  return all[0];
}

/** Streams ExportDomain into the file; Ctrl-C cancels the call (the finally blocks then clean up). */
async function copyStream(streamer: PageStreamerClient, domid: number, format: XenStreamFormat, file: FileHandle): Promise<ExportSummary> {
  const stream = streamer.exportDomain({ domid, format });
  const onInterrupt = () => stream.cancel();
  process.once('SIGINT', onInterrupt);
  let written = 0;
  let summary: ExportSummary | undefined;
  try {
    for await (const message of stream as AsyncIterable<ExportDomainResponse>) {
      if (message.part?.$case === 'data') {
        await file.write(message.part.data);
        written += message.part.data.length;
      } else if (message.part?.$case === 'summary') {
        summary = message.part.summary;
      }
    }
  } catch (err) {
    throw new ExportFailure(`the export of domid ${domid} failed: ${describeError(err)}`);
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  if (!summary) throw new ExportFailure('the page streamer ended the export without its summary');
  if (Number(summary.streamBytes) !== written) throw new ExportFailure(`received ${written} bytes, the page streamer wrote ${summary.streamBytes}`);
  return summary;
}

async function inspect(path: string): Promise<DomainImage> {
  try {
    return await readDomainImage(createReadStream(path));
  } catch (err) {
    throw new ExportFailure(`${path}: ${(err as Error).message}`);
  }
}

function imageJson(path: string, image: DomainImage) {
  return {
    file: path,
    format: image.format,
    stream_bytes: image.streamBytes,
    config: image.config
      ? {
          name: image.config.name,
          uuid: image.config.uuid,
          vcpus: image.config.vcpus,
          max_memkb: image.config.maxMemKiB,
          target_memkb: image.config.targetMemKiB,
          ferry: image.config.ferry ? { driver: image.config.ferry.driver, max_pages: image.config.ferry.maxPages, vcpu_context_bytes: image.config.ferry.vcpuContext?.byteLength ?? 0 } : null,
        }
      : null,
    libxl_records: image.libxlRecords,
    libxc_version: image.libxcVersion,
    domain_type: image.domainHeader.type === 2 ? 'x86 HVM' : 'x86 PV',
    xen_version: `${image.domainHeader.xenMajor}.${image.domainHeader.xenMinor}`,
    records: image.recordOrder,
    pfn_entries: image.pfnEntries,
    data_entries: image.memory.dataEntries,
    populated_pages: image.memory.populatedCount,
    unpopulated_pages: image.memory.unpopulatedCount,
    hvm_context_bytes: image.hvmContext?.length ?? 0,
    hvm_context: image.hvmContextCheck ? (image.hvmContextCheck.ok ? image.hvmContextCheck.entries.map((e) => `${e.typecode}/${e.instance}`) : `malformed: ${image.hvmContextCheck.problem}`) : null,
    hvm_params: image.hvmParams?.length ?? 0,
    cpuid_policy_leaves: (image.cpuidPolicy?.length ?? 0) / 24,
    msr_policy_entries: (image.msrPolicy?.length ?? 0) / 16,
    memory_digest: image.memory.digest().toString('hex'),
  };
}

function printImage(path: string, image: DomainImage): void {
  const j = imageJson(path, image);
  console.log(`${path}: ${j.format} stream, ${formatBytes(j.stream_bytes)} (${j.stream_bytes} bytes)`);
  if (j.config) {
    console.log(`  domain         ${j.config.name} ${j.config.uuid}, ${j.config.vcpus} vCPU, max ${formatBytes(j.config.max_memkb * 1024)}, target ${formatBytes(j.config.target_memkb * 1024)}`);
    if (j.config.ferry) console.log(`  ferry          exported from the ${j.config.ferry.driver} driver, vCPU context of ${j.config.ferry.vcpu_context_bytes} bytes in the config`);
  }
  if (j.libxl_records.length > 0) console.log(`  libxl          ${j.libxl_records.join(', ')}`);
  console.log(`  libxc          version ${j.libxc_version}, ${j.domain_type} from Xen ${j.xen_version}`);
  console.log(`  records        ${j.records.join(', ')}`);
  console.log(`  pages          ${j.pfn_entries} pfn entries: ${j.populated_pages} pages populated (${j.data_entries} copies sent), ${j.unpopulated_pages} unpopulated (XTAB)`);
  console.log(`  HVM context    ${j.hvm_context_bytes} bytes: ${Array.isArray(j.hvm_context) ? `entries ${j.hvm_context.join(' ')}` : j.hvm_context}; ${j.hvm_params} HVM params`);
  console.log(`  CPU policy     ${j.cpuid_policy_leaves} CPUID leaves, ${j.msr_policy_entries} MSRs${j.cpuid_policy_leaves + j.msr_policy_entries === 0 ? ' (none: a receiver applies its default policy)' : ''}`);
  console.log(`  memory digest  ${j.memory_digest}`);
}

function describeError(err: unknown): string {
  if (err instanceof ExportFailure) return err.message;
  const e = toClientError(err);
  if (e instanceof FerryClientError) return `${e.message} (${e.codeName}${e.reason ? ` ${e.reason}` : ''})`;
  return e instanceof Error ? e.message : String(e);
}
