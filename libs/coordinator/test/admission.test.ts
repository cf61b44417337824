import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Admission } from '../src';

test('caps per source, per target and per cluster hold; the rest waits', () => {
  const a = new Admission({ cluster: 2, perSource: 1, perTarget: 1 });
  a.enqueue({ id: 'm1', source: 'h1', target: 'h2' });
  a.enqueue({ id: 'm2', source: 'h1', target: 'h3' }); // same source as m1
  a.enqueue({ id: 'm3', source: 'h4', target: 'h2' }); // same target as m1
  a.enqueue({ id: 'm4', source: 'h5', target: 'h6' });
  a.enqueue({ id: 'm5', source: 'h7', target: 'h8' });
  // m1 first; m2 and m3 wait for m1's hosts; m4 overtakes them; m5 waits for the cluster cap.
  assert.deepEqual(a.admitReady(), ['m1', 'm4']);
  assert.equal(a.runningCount, 2);
  assert.deepEqual(a.admitReady(), []);
  assert.match(a.blockedBy({ source: 'h7', target: 'h8' }) ?? '', /2 migrations running in the cluster \(cap 2\)/);
  assert.equal(a.outbound('h1'), 1);
  assert.equal(a.inbound('h2'), 1);

  a.remove('m1');
  // Oldest first: m2 (source h1 now free) before m3; m3 then fails the cluster cap.
  assert.deepEqual(a.admitReady(), ['m2']);
  a.remove('m4');
  assert.deepEqual(a.admitReady(), ['m3']);
  a.remove('m2');
  assert.deepEqual(a.admitReady(), ['m5']);
  assert.equal(a.waitingCount, 0);
});

test('a waiting migration can leave the queue; a taken-over one counts as running', () => {
  const a = new Admission({ cluster: 4, perSource: 1, perTarget: 1 });
  a.markRunning({ id: 'old', source: 'h1', target: 'h2' });
  a.enqueue({ id: 'new', source: 'h1', target: 'h3' });
  assert.deepEqual(a.admitReady(), []);
  assert.ok(a.isWaiting('new'));
  assert.match(a.blockedBy({ source: 'h1', target: 'h3' }) ?? '', /source host h1 has 1 outbound/);
  assert.equal(a.remove('new'), true);
  assert.equal(a.isWaiting('new'), false);
  assert.equal(a.remove('new'), false);
  a.enqueue({ id: 'old', source: 'h1', target: 'h2' }); // already running: ignored
  assert.equal(a.waitingCount, 0);
});

test('caps must be positive integers', () => {
  assert.throws(() => new Admission({ cluster: 0, perSource: 1, perTarget: 1 }), RangeError);
  assert.throws(() => new Admission({ cluster: 1, perSource: 1.5, perTarget: 1 }), RangeError);
});
