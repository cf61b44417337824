// The emulated workload as the hypervisor interface names it, turned into the API's message.

import { WorkloadKind, WritePattern, type WorkloadSpec as ProtoWorkloadSpec } from '@ferry/proto';
import type { WorkloadSpec } from '@ferry/hypervisor';

const KIND: Record<WorkloadSpec['kind'], WorkloadKind> = {
  kv: WorkloadKind.WORKLOAD_KIND_KV,
  web: WorkloadKind.WORKLOAD_KIND_WEB,
  db: WorkloadKind.WORKLOAD_KIND_DB,
  compile: WorkloadKind.WORKLOAD_KIND_COMPILE,
  memtest: WorkloadKind.WORKLOAD_KIND_MEMTEST,
  idle: WorkloadKind.WORKLOAD_KIND_IDLE,
};

export function workloadToProto(w: WorkloadSpec): ProtoWorkloadSpec {
  return {
    kind: KIND[w.kind],
    seed: w.seed,
    freeFraction: w.freeFraction,
    writeRate: w.writeRate ?? 0,
    hotSetFraction: w.hotSetFraction ?? 0,
    zipfS: w.zipfS ?? 0,
    phaseSeconds: w.phaseSeconds ?? 0,
    pattern: w.pattern === 'sequential' ? WritePattern.WRITE_PATTERN_SEQUENTIAL : w.pattern === 'random' ? WritePattern.WRITE_PATTERN_RANDOM : WritePattern.WRITE_PATTERN_UNSPECIFIED,
  };
}
