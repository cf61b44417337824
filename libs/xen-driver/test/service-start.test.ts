// A per-host service started with FERRY_DRIVER=xen on a host that is not a Xen dom0 stops at once
// with the reason in its fatal log line (in a dom0 it starts and answers GetHostInfo: that is
// proven on nested Xen hosts by test/xen-qemu).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRIVCMD_PATH } from '@ferry/xen-driver';

const root = join(__dirname, '..', '..', '..');
const isDom0 = existsSync(PRIVCMD_PATH) ? `${PRIVCMD_PATH} exists: this host is a Xen dom0` : false;

test('host-agent with FERRY_DRIVER=xen outside a dom0 exits 1 saying "not a Xen dom0"', { skip: isDom0, timeout: 180_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'services/host-agent/src/main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      FERRY_DRIVER: 'xen',
      FERRY_HOST: 'xen-driver-test',
      FERRY_LISTEN: '127.0.0.1:0',
      // Never reached: the driver is opened before NATS.
      NATS_URL: 'nats://127.0.0.1:1',
      FERRY_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const killer = setTimeout(() => child.kill('SIGKILL'), 150_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(killer);
  assert.equal(code, 1, `exit status ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  const fatal = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; err?: string; msg: string })
    .find((l) => l.level === 60);
  assert.ok(fatal, `no fatal log line in:\n${stdout}`);
  assert.equal(fatal.err, 'FERRY_DRIVER=xen: not a Xen dom0: /dev/xen/privcmd not found');
});
