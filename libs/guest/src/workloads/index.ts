// The workload programs by kind.

import type { WorkloadSpec } from '@ferry/hypervisor';
import type { WorkloadProgram, WorkloadKind } from './workload';
import { compileParams, compileProgram } from './compile';
import { dbParams, dbProgram } from './db';
import { idleParams, idleProgram } from './idle';
import { kvParams, kvProgram } from './kv';
import { memtestParams, memtestProgram } from './memtest';
import { webParams, webProgram } from './web';

const programs: Record<WorkloadKind, WorkloadProgram> = {
  kv: kvProgram,
  web: webProgram,
  db: dbProgram,
  compile: compileProgram,
  memtest: memtestProgram,
  idle: idleProgram,
};

export function workloadProgram(kind: WorkloadKind): WorkloadProgram {
  const p = programs[kind];
  if (!p) throw new Error(`no workload program "${kind}"`);
  return p;
}

/** The parameters a workload runs with for this spec in a guest of maxPages (defaults filled in). */
export function workloadParams(spec: WorkloadSpec, maxPages: number): Record<string, number | string> {
  switch (spec.kind) {
    case 'kv':
      return { ...kvParams(spec, maxPages) };
    case 'web':
      return { ...webParams(spec, maxPages) };
    case 'db':
      return { ...dbParams(spec, maxPages) };
    case 'compile':
      return { ...compileParams(spec, maxPages) };
    case 'memtest':
      return { ...memtestParams(spec) };
    case 'idle':
      return { ...idleParams(spec) };
  }
}
