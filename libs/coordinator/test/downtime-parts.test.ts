import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { downtimePartsOf } from '../src/roll-forward';

describe('downtime parts', () => {
  it('splits the window at the call boundaries, so the parts add up to the downtime', () => {
    const parts = downtimePartsOf({ suspendStartedAt: 1000, finalCall: { startedAt: 1012, endedAt: 1040 } }, 1046, 1055)!;
    assert.deepEqual(parts, { suspendMs: 12n, finalRoundMs: 28n, verifyMs: 0n, commitMs: 6n, resumeMs: 9n });
    const sum = parts.suspendMs + parts.finalRoundMs + parts.verifyMs + parts.commitMs + parts.resumeMs;
    assert.equal(sum, 55n);
  });

  it('takes the digests out of the time between the final round and the unpause', () => {
    const parts = downtimePartsOf({ suspendStartedAt: 0, finalCall: { startedAt: 10, endedAt: 20 }, verifyMs: 300 }, 325, 330)!;
    assert.equal(parts.verifyMs, 300n);
    assert.equal(parts.commitMs, 5n);
  });

  it('has no parts when this process did not see the whole window (a takeover)', () => {
    assert.equal(downtimePartsOf({}, 10, 20), undefined);
    assert.equal(downtimePartsOf({ suspendStartedAt: 5 }, 10, 20), undefined);
  });
});
