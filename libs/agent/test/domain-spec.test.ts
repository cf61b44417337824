// Checking CreateDomain specs: every bad field is an INVALID_ARGUMENT with a reason.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toDriverDomainSpec } from '@ferry/agent';
import { DomainSpec, WorkloadKind, WritePattern } from '@ferry/proto';
import { FerryError } from '@ferry/runtime';

const MiB = 1024n * 1024n;

function reason(spec: DomainSpec | undefined): string {
  try {
    toDriverDomainSpec(spec);
  } catch (err) {
    assert.ok(err instanceof FerryError);
    return err.reason;
  }
  return 'accepted';
}

describe('toDriverDomainSpec', () => {
  it('turns a good spec into the driver\'s', () => {
    const spec = DomainSpec.fromPartial({
      name: 'db-1',
      memoryBytes: 64n * MiB,
      vcpus: 2,
      workload: { kind: WorkloadKind.WORKLOAD_KIND_MEMTEST, seed: 3, freeFraction: 0.25, writeRate: 500, pattern: WritePattern.WRITE_PATTERN_SEQUENTIAL },
    });
    assert.deepEqual(toDriverDomainSpec(spec), {
      name: 'db-1',
      maxPages: 16384,
      vcpus: 2,
      workload: { kind: 'memtest', seed: 3, freeFraction: 0.25, writeRate: 500, hotSetFraction: 0, zipfS: 0, phaseSeconds: 0, pattern: 'sequential' },
    });
    const idle = toDriverDomainSpec(DomainSpec.fromPartial({ name: 'x', memoryBytes: 4096n }));
    assert.equal(idle.vcpus, 1);
    assert.equal(idle.workload, undefined);
    assert.equal(toDriverDomainSpec(DomainSpec.fromPartial({ name: 'x', memoryBytes: 4096n, workload: {} })).workload?.kind, 'idle');
  });

  it('names the bad field', () => {
    const base = { name: 'ok', memoryBytes: 16n * MiB };
    assert.equal(reason(undefined), 'SPEC_REQUIRED');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, name: '' })), 'INVALID_NAME');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, name: 'x'.repeat(65) })), 'INVALID_NAME');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, memoryBytes: 0n })), 'INVALID_MEMORY');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, memoryBytes: 4097n })), 'INVALID_MEMORY');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, vcpus: 129 })), 'INVALID_VCPUS');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { kind: 42 as WorkloadKind } })), 'UNKNOWN_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { kind: WorkloadKind.UNRECOGNIZED } })), 'UNKNOWN_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { freeFraction: 1 } })), 'INVALID_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { freeFraction: Number.NaN } })), 'INVALID_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { hotSetFraction: 1.5 } })), 'INVALID_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { writeRate: -1 } })), 'INVALID_WORKLOAD');
    assert.equal(reason(DomainSpec.fromPartial({ ...base, workload: { pattern: 9 as WritePattern } })), 'INVALID_WORKLOAD');
  });
});
