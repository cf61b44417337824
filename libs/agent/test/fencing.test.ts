// The fence rules of common.proto (message Fence), on the table alone.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { FenceTable, requireFence } from '@ferry/agent';
import { FerryError } from '@ferry/runtime';

const fence = (migrationId: string, epoch: number) => ({ migrationId, epoch: BigInt(epoch) });

function refusal(fn: () => unknown): { code: number; reason: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError, String(err));
    return { code: err.code, reason: err.reason };
  }
  throw new Error('expected a refusal');
}

describe('FenceTable', () => {
  it('binds an object to the first fenced call and lets unfenced calls through while unbound', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    t.admit(1, undefined, 'Pause');
    assert.equal(t.holder(1), undefined);
    t.admit(1, fence('m-1', 3), 'Pause');
    assert.deepEqual(t.holder(1), { migrationId: 'm-1', epoch: 3n });
  });

  it('refuses another migration and operators with FAILED_PRECONDITION', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    t.admit(1, fence('m-1', 3), 'Pause');
    assert.deepEqual(refusal(() => t.admit(1, fence('m-2', 99), 'Pause')), { code: status.FAILED_PRECONDITION, reason: 'DOMAIN_HELD_BY_MIGRATION' });
    assert.deepEqual(refusal(() => t.admit(1, undefined, 'Pause')), { code: status.FAILED_PRECONDITION, reason: 'DOMAIN_HELD_BY_MIGRATION' });
    t.admit(2, fence('m-2', 1), 'Pause'); // other objects are independent
  });

  it('refuses a stale epoch with ABORTED and raises the bar on a newer one', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    t.admit(1, fence('m-1', 3), 'Pause');
    assert.deepEqual(refusal(() => t.admit(1, fence('m-1', 2), 'Pause')), { code: status.ABORTED, reason: 'FENCE_STALE_EPOCH' });
    t.admit(1, fence('m-1', 3), 'Pause'); // equal is fine
    t.admit(1, fence('m-1', 7), 'Pause');
    assert.equal(t.holder(1)?.epoch, 7n);
    assert.deepEqual(refusal(() => t.check(1, fence('m-1', 6), 'Restore')), { code: status.ABORTED, reason: 'FENCE_STALE_EPOCH' });
  });

  it('check() never binds', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    assert.equal(t.check(1, fence('m-1', 1), 'Restore'), undefined);
    assert.equal(t.holder(1), undefined);
  });

  it('releases only for the holder, idempotently', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    t.admit(1, fence('m-1', 3), 'Pause');
    assert.equal(t.release(1, fence('m-2', 5), 'Release'), false);
    assert.deepEqual(refusal(() => t.release(1, fence('m-1', 1), 'Release')), { code: status.ABORTED, reason: 'FENCE_STALE_EPOCH' });
    assert.equal(t.release(1, fence('m-1', 3), 'Release'), true);
    assert.equal(t.release(1, fence('m-1', 3), 'Release'), false);
    t.admit(1, fence('m-2', 1), 'Pause'); // free for the next migration
    t.forget(1);
    assert.deepEqual(t.keys(), []);
  });

  it('refuses malformed fences with INVALID_ARGUMENT', () => {
    const t = new FenceTable<number>((d) => `domain ${d}`);
    assert.deepEqual(refusal(() => t.admit(1, fence('', 1), 'Pause')), { code: status.INVALID_ARGUMENT, reason: 'FENCE_INVALID' });
    assert.deepEqual(refusal(() => t.admit(1, fence('m-1', 0), 'Pause')), { code: status.INVALID_ARGUMENT, reason: 'FENCE_INVALID' });
    assert.deepEqual(refusal(() => requireFence(undefined, 'Release')), { code: status.INVALID_ARGUMENT, reason: 'FENCE_REQUIRED' });
    assert.equal(t.holder(1), undefined);
  });
});
