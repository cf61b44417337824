// The hypercall framing: frames survive any split of the byte stream, payloads stay binary, and a
// malformed stream is refused with a ProtocolError instead of being misread.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameDecoder,
  MAX_FRAME_BYTES,
  ProtocolError,
  decodePfns,
  encodeFrame,
  encodePfns,
  type Frame,
} from '../src/index';

test('frames round-trip whole, split byte by byte, and several per chunk', () => {
  const payload = new Uint8Array([0, 1, 2, 255, 254]);
  const a = encodeFrame({ t: 'req', id: 1, op: 'p2m', args: { domid: 3 } });
  const b = encodeFrame({ t: 'res', id: 1, ok: true, result: {} }, payload);
  const c = encodeFrame({ t: 'watch', watchId: 9, path: '/local/domain/3/memory/target' });
  const stream = Buffer.concat([a, b, c]);

  const whole = new FrameDecoder().push(stream);
  const bytewise = new FrameDecoder();
  const pieces: Frame[] = [];
  for (let i = 0; i < stream.length; i++) pieces.push(...bytewise.push(stream.subarray(i, i + 1)));

  for (const frames of [whole, pieces]) {
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0].header, { t: 'req', id: 1, op: 'p2m', args: { domid: 3 } });
    assert.equal(frames[0].payload, null);
    assert.deepEqual([...frames[1].payload!], [...payload]);
    assert.deepEqual(frames[2].header, { t: 'watch', watchId: 9, path: '/local/domain/3/memory/target' });
  }
});

test('malformed streams are refused', () => {
  const huge = Buffer.alloc(8);
  huge.writeUInt32LE(MAX_FRAME_BYTES + 1, 0);
  assert.throws(() => new FrameDecoder().push(huge), ProtocolError);

  const notJson = Buffer.alloc(8 + 3);
  notJson.writeUInt32LE(4 + 3, 0);
  notJson.writeUInt32LE(3, 4);
  notJson.write('{x}', 8);
  assert.throws(() => new FrameDecoder().push(notJson), /not JSON/);

  const overrun = Buffer.alloc(8 + 2);
  overrun.writeUInt32LE(4 + 2, 0);
  overrun.writeUInt32LE(100, 4);
  assert.throws(() => new FrameDecoder().push(overrun), /overruns/);

  const untyped = encodeFrame({ t: 'nope' } as never);
  assert.throws(() => new FrameDecoder().push(untyped), /no valid type/);
});

test('pfn lists travel as u32 payloads, even when unaligned in their frame', () => {
  const pfns = [0, 1, 1023, 262143, 2 ** 32 - 1];
  const frame = encodeFrame({ t: 'req', id: 7, op: 'populate', args: { domid: 1 } }, encodePfns(pfns));
  const [decoded] = new FrameDecoder().push(frame);
  assert.deepEqual([...decodePfns(decoded.payload)], pfns);
  assert.deepEqual([...decodePfns(null)], []);
  assert.throws(() => decodePfns(Buffer.from([1, 2, 3])), /multiple of 4/);
});
