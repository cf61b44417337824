// Migration ids: readable, sortable by creation time, safe as NATS KV keys and subject tokens
// (e.g. "mig-20250102t030405-1a2b3c").

import { randomBytes } from 'node:crypto';

export function newMigrationId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  return `mig-${stamp}-${randomBytes(3).toString('hex')}`;
}
