// Dispatch of xenstore watch events by token.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { WatchRegistry } from '@ferry/xen-driver';

it('hands each event to the watch whose token it carries, and drops events of removed watches', () => {
  const registry = new WatchRegistry();
  const seen: string[] = [];
  const a = registry.add('/local/domain/3/control/shutdown', (p) => seen.push(`a:${p}`));
  const b = registry.add('@releaseDomain', (p) => seen.push(`b:${p}`));
  assert.notEqual(a, b);
  registry.dispatch('/local/domain/3/control/shutdown', a);
  registry.dispatch('@releaseDomain', b);
  registry.dispatch('/x', 'unknown-token');
  registry.remove(a);
  registry.dispatch('/local/domain/3/control/shutdown', a);
  assert.deepEqual(seen, ['a:/local/domain/3/control/shutdown', 'b:@releaseDomain']);
  assert.equal(registry.size, 1);
});

it('wakes every watcher once with its own path when the xenstore connection breaks', () => {
  const registry = new WatchRegistry();
  const seen: string[] = [];
  registry.add('/a', (p) => seen.push(p));
  registry.add('/b', (p) => seen.push(p));
  registry.dispatch(null, null, new Error('reading xenstore watch events: Broken pipe (EPIPE)'));
  assert.deepEqual(seen.sort(), ['/a', '/b']);
});
