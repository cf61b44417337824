// `ferry hosts`, `ferry domains`, `ferry domain create`.

import { DomainState, type Domain } from '@ferry/proto';
import { workloadToProto } from '@ferry/client';
import { formatBytes, parseBytes } from '@ferry/runtime';
import { num, parse, UsageError } from '../args';
import { connect, COORDINATOR_FLAGS } from '../coordinator';
import { WORKLOAD_FLAGS, workloadFromFlags } from '../workload-flags';
import type { Command } from './command';

const PAGE = 4096;

export function domainStateName(s: DomainState): string {
  switch (s) {
    case DomainState.DOMAIN_STATE_RUNNING:
      return 'running';
    case DomainState.DOMAIN_STATE_PAUSED:
      return 'paused';
    case DomainState.DOMAIN_STATE_SHUTDOWN:
      return 'shutdown';
    default:
      return 'unknown';
  }
}

export function domainJson(d: Domain) {
  return {
    name: d.name,
    host: d.host,
    domid: d.domid,
    state: domainStateName(d.state),
    memory_bytes: Number(d.maxPages) * PAGE,
    populated_pages: Number(d.nrPages),
    max_pages: Number(d.maxPages),
    vcpus: d.vcpus,
    service_address: d.serviceAddress || null,
    migration_id: d.migrationId || null,
  };
}

export const hosts: Command = {
  name: 'hosts',
  usage: 'hosts [--json] [--coordinator ADDR]',
  summary: 'list the cluster\'s hosts',
  async run(argv) {
    const { values } = parse(argv, { ...COORDINATOR_FLAGS, json: { type: 'boolean' } });
    const ferry = connect(values);
    try {
      const list = await ferry.listHosts();
      const rows = list.map((h) => ({
        name: h.host?.name ?? '',
        ready: h.ready,
        driver: h.host?.driver === 2 ? 'xen' : 'emulated',
        total_pages: Number(h.host?.totalPages ?? 0),
        free_pages: Number(h.host?.freePages ?? 0),
        outbound_migrations: h.outboundMigrations,
        inbound_migrations: h.inboundMigrations,
        host_agent: h.host?.endpoints?.hostAgent ?? '',
      }));
      if (values.json) console.log(JSON.stringify(rows));
      else {
        console.log(`${'NAME'.padEnd(12)} ${'READY'.padEnd(6)} ${'FREE'.padStart(10)} ${'TOTAL'.padStart(10)}  HOST-AGENT`);
        for (const r of rows) console.log(`${r.name.padEnd(12)} ${String(r.ready).padEnd(6)} ${formatBytes(r.free_pages * PAGE).padStart(10)} ${formatBytes(r.total_pages * PAGE).padStart(10)}  ${r.host_agent}`);
      }
      return 0;
    } finally {
      ferry.close();
    }
  },
};

export const domains: Command = {
  name: 'domains',
  usage: 'domains [--host H] [--json] [--coordinator ADDR]',
  summary: 'list domains on every host',
  async run(argv) {
    const { values } = parse(argv, { ...COORDINATOR_FLAGS, host: { type: 'string' }, json: { type: 'boolean' } });
    const ferry = connect(values);
    try {
      const res = await ferry.listDomains(values.host ?? '');
      const rows = res.domains.map(domainJson);
      if (values.json) console.log(JSON.stringify(rows));
      else {
        console.log(`${'NAME'.padEnd(16)} ${'HOST'.padEnd(10)} ${'STATE'.padEnd(9)} ${'MEMORY'.padStart(10)} ${'POPULATED'.padStart(10)}  SERVICE`);
        for (const r of rows) {
          console.log(`${r.name.padEnd(16)} ${r.host.padEnd(10)} ${r.state.padEnd(9)} ${formatBytes(r.memory_bytes).padStart(10)} ${formatBytes(r.populated_pages * PAGE).padStart(10)}  ${r.service_address ?? ''}`);
        }
      }
      return 0;
    } finally {
      ferry.close();
    }
  },
};


export const domainCreate: Command = {
  name: 'domain create',
  usage: 'domain create --host H --name N [--workload kv] [--memory 256MiB] [--free 0.5] [--seed 1] [--json]',
  summary: 'boot a new emulated guest on a host',
  help: `
Workload knobs: --write-rate N (ops/s; page writes/s for memtest), --hot-set F (fraction of the
data), --zipf S, --phase-seconds S (the hot set moves), --pattern sequential|random (memtest),
--vcpus N.`,
  async run(argv) {
    const { values } = parse(argv, {
      ...COORDINATOR_FLAGS,
      ...WORKLOAD_FLAGS,
      host: { type: 'string' },
      name: { type: 'string' },
      memory: { type: 'string' },
      vcpus: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (!values.host || !values.name) throw new UsageError('--host and --name are required');
    const workload = workloadToProto(workloadFromFlags(values));
    const ferry = connect(values);
    try {
      const d = await ferry.createDomain(values.host, {
        name: values.name,
        memoryBytes: parseBytes(values.memory ?? '256MiB'),
        vcpus: num(values.vcpus, 'vcpus', 1),
        workload,
      });
      const j = domainJson(d);
      if (values.json) console.log(JSON.stringify(j));
      else console.log(`created ${j.name} on ${j.host} (domid ${j.domid}, ${formatBytes(j.memory_bytes)}, ${j.state})${j.service_address ? `, serving on ${j.service_address}` : ''}`);
      return 0;
    } finally {
      ferry.close();
    }
  },
};
