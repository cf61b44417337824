// Checking a CreateDomain request (ferry.v1.DomainSpec) and turning it into the driver's spec.
// Every problem is an INVALID_ARGUMENT with a reason naming the field, so a caller can tell a bad
// spec from a full host (RESOURCE_EXHAUSTED) or a taken name (ALREADY_EXISTS).

import {
  PAGE_SIZE,
  type DomainSpec as DriverDomainSpec,
  type WorkloadSpec as DriverWorkloadSpec,
} from '@ferry/hypervisor';
import { WorkloadKind, WritePattern, type DomainSpec, type WorkloadSpec } from '@ferry/proto';
import { invalidArgument } from '@ferry/runtime';

/** Xen's own limit on a domain name is 64 bytes; the emulated host allows these characters. */
export const DOMAIN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_VCPUS = 128;

const WORKLOADS: ReadonlyMap<number, DriverWorkloadSpec['kind']> = new Map([
  [WorkloadKind.WORKLOAD_KIND_UNSPECIFIED, 'idle'],
  [WorkloadKind.WORKLOAD_KIND_KV, 'kv'],
  [WorkloadKind.WORKLOAD_KIND_WEB, 'web'],
  [WorkloadKind.WORKLOAD_KIND_DB, 'db'],
  [WorkloadKind.WORKLOAD_KIND_COMPILE, 'compile'],
  [WorkloadKind.WORKLOAD_KIND_MEMTEST, 'memtest'],
  [WorkloadKind.WORKLOAD_KIND_IDLE, 'idle'],
]);

export function checkDomainName(name: string, field = 'name'): string {
  if (!DOMAIN_NAME.test(name)) {
    throw invalidArgument('INVALID_NAME', `${field} ${JSON.stringify(name)} must be 1-64 characters of A-Z a-z 0-9 _ . -`);
  }
  return name;
}

export function checkVcpus(vcpus: number): number {
  if (vcpus === 0) return 1;
  if (!Number.isInteger(vcpus) || vcpus < 0 || vcpus > MAX_VCPUS) {
    throw invalidArgument('INVALID_VCPUS', `vcpus must be 1-${MAX_VCPUS} (0 = 1), got ${vcpus}`);
  }
  return vcpus;
}

/** memory_bytes → pages: a positive whole number of 4 KiB pages. */
export function memoryPages(memoryBytes: bigint): number {
  const page = BigInt(PAGE_SIZE);
  if (memoryBytes <= 0n || memoryBytes % page !== 0n) {
    throw invalidArgument(
      'INVALID_MEMORY',
      `memory_bytes must be a positive multiple of ${PAGE_SIZE} (4 KiB pages), got ${memoryBytes}`,
    );
  }
  const pages = memoryBytes / page;
  if (pages > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument('INVALID_MEMORY', `memory_bytes ${memoryBytes} is absurdly large`);
  return Number(pages);
}

export function toDriverDomainSpec(spec: DomainSpec | undefined): DriverDomainSpec {
  if (!spec) throw invalidArgument('SPEC_REQUIRED', 'CreateDomain needs a spec');
  return {
    name: checkDomainName(spec.name, 'spec.name'),
    maxPages: memoryPages(spec.memoryBytes),
    vcpus: checkVcpus(spec.vcpus),
    workload: toDriverWorkload(spec.workload),
  };
}

function toDriverWorkload(w: WorkloadSpec | undefined): DriverWorkloadSpec | undefined {
  if (!w) return undefined; // the emulated host runs IDLE
  const kind = WORKLOADS.get(w.kind);
  if (kind === undefined) {
    throw invalidArgument('UNKNOWN_WORKLOAD', `workload.kind ${w.kind} is not a known WorkloadKind (KV, WEB, DB, COMPILE, MEMTEST, IDLE)`);
  }
  if (!(w.freeFraction >= 0 && w.freeFraction < 1)) {
    throw invalidArgument('INVALID_WORKLOAD', `workload.free_fraction must be in [0, 1), got ${w.freeFraction}`);
  }
  if (!(w.hotSetFraction >= 0 && w.hotSetFraction <= 1)) {
    throw invalidArgument('INVALID_WORKLOAD', `workload.hot_set_fraction must be in [0, 1], got ${w.hotSetFraction}`);
  }
  for (const [field, value] of [
    ['write_rate', w.writeRate],
    ['zipf_s', w.zipfS],
    ['phase_seconds', w.phaseSeconds],
  ] as const) {
    if (!(Number.isFinite(value) && value >= 0)) {
      throw invalidArgument('INVALID_WORKLOAD', `workload.${field} must be a finite number >= 0, got ${value}`);
    }
  }
  const out: DriverWorkloadSpec = {
    kind,
    seed: w.seed,
    // Zero is meaningful here (a guest with no free memory), so it is passed on as is.
    freeFraction: w.freeFraction,
    writeRate: w.writeRate,
    hotSetFraction: w.hotSetFraction,
    zipfS: w.zipfS,
    phaseSeconds: w.phaseSeconds,
  };
  switch (w.pattern) {
    case WritePattern.WRITE_PATTERN_UNSPECIFIED:
      break;
    case WritePattern.WRITE_PATTERN_SEQUENTIAL:
      out.pattern = 'sequential';
      break;
    case WritePattern.WRITE_PATTERN_RANDOM:
      out.pattern = 'random';
      break;
    default:
      throw invalidArgument('INVALID_WORKLOAD', `workload.pattern ${w.pattern} is not a known WritePattern`);
  }
  return out;
}
