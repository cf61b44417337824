// The relay the nested hosts' migration traffic passes through: it forwards both ways, counts each
// direction and captures exactly what the receiver was sent (real sockets on loopback).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CountingRelay } from './counting-relay';

describe('counting relay', () => {
  it('forwards, counts and captures the sender-to-receiver bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const received: Buffer[] = [];
    // The receiver reads everything, then answers with a short acknowledgement and closes.
    const receiver = createServer((s) => {
      s.on('data', (c: Buffer) => received.push(c));
      s.on('end', () => s.end('ok\n'));
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const relay = await CountingRelay.listen({ host: '127.0.0.1', port: (receiver.address() as AddressInfo).port }, join(dir, 'capture.bin'));
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = new Socket();
        const back: Buffer[] = [];
        s.on('data', (c: Buffer) => back.push(c));
        s.once('error', reject);
        s.once('close', () => resolve(Buffer.concat(back).toString()));
        s.connect(relay.port, '127.0.0.1', () => s.end(payload));
      });
      assert.equal(answer, 'ok\n');
      const counts = await relay.close();
      assert.deepEqual(counts, { forwardBytes: payload.length, backwardBytes: 3, connections: 1 });
      assert.ok(Buffer.concat(received).equals(payload));
      assert.ok(readFileSync(join(dir, 'capture.bin')).equals(payload));
    } finally {
      await relay.close().catch(() => {});
      await new Promise<void>((r) => receiver.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
