// The guest workload flags every command that boots a guest accepts, read the same way everywhere.

import type { WorkloadSpec } from '@ferry/hypervisor';
import { num, UsageError } from './args';

const WORKLOADS = ['kv', 'web', 'db', 'compile', 'memtest', 'idle'] as const;

export const WORKLOAD_FLAGS = {
  workload: { type: 'string' },
  seed: { type: 'string' },
  free: { type: 'string' },
  'write-rate': { type: 'string' },
  'hot-set': { type: 'string' },
  zipf: { type: 'string' },
  'phase-seconds': { type: 'string' },
  pattern: { type: 'string' },
} as const;

export type WorkloadFlagValues = Partial<Record<keyof typeof WORKLOAD_FLAGS, string>>;

export function workloadKind(value: string | undefined, fallback: WorkloadSpec['kind'] = 'kv'): WorkloadSpec['kind'] {
  const kind = value ?? fallback;
  if (!(WORKLOADS as readonly string[]).includes(kind)) throw new UsageError(`unknown workload "${kind}" (one of ${WORKLOADS.join(', ')})`);
  return kind as WorkloadSpec['kind'];
}

export function workloadFromFlags(values: WorkloadFlagValues): WorkloadSpec {
  const pattern = values.pattern;
  if (pattern !== undefined && pattern !== 'sequential' && pattern !== 'random') throw new UsageError('--pattern is sequential or random');
  return {
    kind: workloadKind(values.workload),
    seed: num(values.seed, 'seed', 1),
    freeFraction: num(values.free, 'free', 0.5),
    writeRate: num(values['write-rate'], 'write-rate', 0),
    hotSetFraction: num(values['hot-set'], 'hot-set', 0),
    zipfS: num(values.zipf, 'zipf', 0),
    phaseSeconds: num(values['phase-seconds'], 'phase-seconds', 0),
    ...(pattern ? { pattern } : {}),
  };
}
