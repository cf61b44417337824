import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { CompactionTimeoutAction, MigrationPolicy, PayloadCompression, StartMigrationRequest, TimeoutAction } from '@ferry/proto';
import { DEFAULT_LAYERED_PARAMS } from '@ferry/policy';
import { FerryError } from '@ferry/runtime';
import { effectiveOptions, validateStartRequest } from '../src';

const LAYERED = MigrationPolicy.MIGRATION_POLICY_LAYERED;
const XEN = MigrationPolicy.MIGRATION_POLICY_XEN_4_17;

function invalid(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof FerryError && err.code === status.INVALID_ARGUMENT && err.reason === reason);
}

test('defaults are filled in, per policy', () => {
  const xen = effectiveOptions(XEN, undefined);
  assert.equal(xen.compaction, false, 'the Xen baselines behave as Xen: no compaction');
  assert.equal(xen.maxRounds, 5);
  assert.equal(xen.onTimeout, TimeoutAction.TIMEOUT_ACTION_ABORT);
  assert.equal(xen.completionTimeoutPerGibS, 800n);
  assert.equal(xen.compression, PayloadCompression.PAYLOAD_COMPRESSION_NONE);
  assert.equal(xen.onCompactionTimeout, CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_CONTINUE);
  assert.deepEqual(xen.layered, DEFAULT_LAYERED_PARAMS, 'the classifier defaults of @ferry/policy');
  assert.equal(effectiveOptions(MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY, undefined).maxRounds, 29);
  const layered = effectiveOptions(LAYERED, undefined);
  assert.equal(layered.compaction, true, 'compaction is on for the thesis policy');
  assert.ok(layered.compactionHeadroomFraction > 0);
  assert.ok(layered.compactionSettleTimeoutMs > 0n);
  // Explicit choices win.
  const mine = effectiveOptions(LAYERED, { ...layered, compaction: false, maxRounds: 7, bandwidthBps: 1_000_000_000n, verify: true });
  assert.equal(mine.compaction, false);
  assert.equal(mine.maxRounds, 7);
  assert.equal(mine.bandwidthBps, 1_000_000_000n);
  assert.equal(mine.verify, true);
});

test('malformed options are INVALID_ARGUMENT with a reason', () => {
  const base = effectiveOptions(LAYERED, undefined);
  invalid(() => effectiveOptions(LAYERED, { ...base, layered: { window: 9, threshold: 2, demoteAfter: 2 } }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(LAYERED, { ...base, layered: { window: 3, threshold: 4, demoteAfter: 2 } }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(LAYERED, { ...base, compactionHeadroomFraction: Number.NaN }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(LAYERED, { ...base, compactionHeadroomFraction: -1 }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(LAYERED, { ...base, onTimeout: -1 as TimeoutAction }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(LAYERED, { ...base, compression: 9 as PayloadCompression }), 'INVALID_OPTIONS');
  invalid(() => effectiveOptions(99 as MigrationPolicy, undefined), 'INVALID_POLICY');
});

test('requests: names required, hosts distinct, default policy applied', () => {
  const req = (p: Partial<StartMigrationRequest>) => StartMigrationRequest.fromPartial({ domainName: 'web', targetHost: 'h2', ...p });
  const ok = validateStartRequest(req({}), XEN);
  assert.equal(ok.policy, XEN);
  assert.equal(ok.sourceHost, '');
  assert.equal(validateStartRequest(req({ policy: LAYERED }), XEN).policy, LAYERED);
  invalid(() => validateStartRequest(req({ domainName: '' }), XEN), 'MISSING_FIELD');
  invalid(() => validateStartRequest(req({ targetHost: '' }), XEN), 'MISSING_FIELD');
  invalid(() => validateStartRequest(req({ sourceHost: 'h2' }), XEN), 'SAME_HOST');
  invalid(() => validateStartRequest(req({ domainName: 'a\nb' }), XEN), 'INVALID_NAME');
  invalid(() => validateStartRequest(req({ requestId: 'x'.repeat(300) }), XEN), 'INVALID_REQUEST_ID');
});
