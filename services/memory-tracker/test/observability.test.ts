// What the memory tracker's metrics count (pure): a retried PrepareRound once, a round prepared
// again as the final one as its second CLEAN, with only the new dirty pages.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PrepareRoundRequest, PrepareRoundResponse } from '@ferry/proto';
import { parseExposition } from '../../../libs/telemetry/test/support/exposition-parser';
import { MemoryTrackerMetrics } from '../src/observability';

const fence = { migrationId: 'mig-1', epoch: 1n };
const req = (round: number, final = false) => PrepareRoundRequest.fromPartial({ fence, round, final });
const res = (dirtyCount: number) => PrepareRoundResponse.fromPartial({ dirtyCount: BigInt(dirtyCount) });

describe('memory-tracker metrics', () => {
  test('rounds, CLEANs and dirty pages', () => {
    const m = new MemoryTrackerMetrics();
    m.prepared(req(0), res(16384), 0.01); // round 0: the populated pages, no CLEAN
    m.prepared(req(1), res(300), 0.01);
    m.prepared(req(1), res(300), 0.01); // a retry: nothing new
    m.prepared(req(2), res(40), 0.01); // stop decided after this CLEAN ...
    m.prepared(req(2, true), res(55), 0.01); // ... so round 2 becomes the final round: CLEAN again, 15 more dirty
    const x = parseExposition(m.registry.render());
    assert.equal(x.value('ferry_memory_tracker_rounds_prepared_total'), 3);
    assert.equal(x.value('ferry_memory_tracker_cleans_total'), 3);
    assert.equal(x.value('ferry_memory_tracker_dirty_pages_total'), 355);
    assert.equal(x.value('ferry_memory_tracker_prepare_round_seconds_count'), 4);
  });
});
