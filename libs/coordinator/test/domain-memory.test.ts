// What a migrating domain counts for in memory checks: Xen's maxmem, not its p2m size.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memoryPagesOf } from '../src/domain-memory';

describe('memoryPagesOf', () => {
  it('a 128 MiB PVH guest on Xen counts 32 Ki pages, not its ~4 GiB p2m', () => {
    assert.equal(memoryPagesOf({ maxPages: 1_044_480n, memoryPages: 33_024n }), 33_024n);
  });
  it('max_pages where the host reports no separate figure (emulated hosts, older agents)', () => {
    assert.equal(memoryPagesOf({ maxPages: 65_536n, memoryPages: 0n }), 65_536n);
    assert.equal(memoryPagesOf({ maxPages: 65_536n, memoryPages: 65_536n }), 65_536n);
    assert.equal(memoryPagesOf({ maxPages: 65_536n, memoryPages: 70_000n }), 65_536n);
  });
});
