// The probe measures a real guest and leaves nothing behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listSharedMemory, liveMappingCount } from '@ferry/shm';
import { runProbe } from '../src/index';

test('runProbe reports dirty rates, memory figures, the balloon and the workload, then cleans up', async () => {
  // Its own folder and host name, so probes other people run at the same time do not interfere.
  const workDir = mkdtempSync(join(tmpdir(), 'ferry-probe-test-'));
  const hostName = `probe-test-${process.pid}`;
  try {
    const result = await runProbe({
      workload: 'kv',
      memoryBytes: 32 * 1024 * 1024,
      freeFraction: 0.5,
      seed: 3,
      seconds: 3,
      hostName,
      workDir,
    });

    assert.equal(result.max_pages, 8192);
    assert.equal(result.dirty_pages_per_s.length, 3);
    assert.equal(result.dirty_pages_per_s_mean, Math.round(result.dirty_pages_per_s.reduce((a, b) => a + b, 0) / 3));
    assert.ok(result.unique_dirty_pages > 0, 'the kv workload writes');
    assert.ok(result.unique_dirty_pages <= result.max_pages);
    assert.equal(result.populated_pages, 8192, 'a new domain starts with everything populated');
    assert.ok(result.free_pages > 0 && result.free_pages < 8192, `guest-reported free pages: ${result.free_pages}`);
    const used = result.populated_pages - result.free_pages;
    assert.equal(result.balloon.target_pages, Math.min(8192, Math.ceil(used * 1.1)));
    assert.equal(result.balloon.reached, true);
    assert.ok(result.balloon.final_pages <= result.balloon.target_pages);
    assert.ok(result.workload.ops > 0);
    assert.equal(result.workload.errors, 0);

    assert.deepEqual(listSharedMemory(`/ferry-${hostName}-`), [], 'no shared memory left');
    assert.deepEqual(readdirSync(workDir), [], 'no temp folder left');
    assert.equal(liveMappingCount(), 0);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});
