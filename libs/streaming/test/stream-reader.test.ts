// The data connection's reader over real loopback sockets: a socket accepted by a server is
// adopted (reads into one fixed buffer, no 'data' events), a connecting socket is read through its
// 'data' events, and either way bytes come out exactly as written, through a ring far smaller than
// the stream (so it wraps and pauses the socket many times), with clean and unclean endings told
// apart.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { StreamEnded, StreamReader } from '../src/wire/stream-reader';

const RING_BYTES = 512 * 1024;

/** Deterministic bytes: byte i of the stream is a function of i. */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 2654435761) >>> 24;
  return b;
}

/** Writes `total` patterned bytes in uneven pieces, waiting for drain, then ends. */
async function writePattern(socket: Socket, total: number): Promise<void> {
  let offset = 0;
  let step = 1;
  while (offset < total) {
    step = (step * 7919) % 300_000;
    const length = Math.min(total - offset, 1 + step);
    if (!socket.write(pattern(offset, length))) await once(socket, 'drain');
    offset += length;
  }
  socket.end();
}

/** Reads `total` bytes in uneven pieces and checks each against the pattern. */
async function readPattern(reader: StreamReader, total: number): Promise<void> {
  let offset = 0;
  let step = 3;
  const target = Buffer.allocUnsafe(400_000);
  while (offset < total) {
    step = (step * 104_729) % 399_999;
    const length = Math.min(total - offset, 1 + step);
    assert.equal(await reader.readInto(target, length), true);
    assert.ok(target.subarray(0, length).equals(pattern(offset, length)), `bytes ${offset}..${offset + length} arrived as written`);
    offset += length;
  }
  assert.equal(reader.bytesRead, total);
  assert.equal(await reader.readInto(target, 1), false, 'a clean end at a message boundary');
}

describe('StreamReader', () => {
  let server: Server;
  let accepted: (s: Socket) => void;
  before(async () => {
    server = createServer({ pauseOnConnect: true }, (s) => accepted(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => server.close());

  /** A loopback connection: the connecting socket and the server's (paused) accepted one. */
  const connectPair = async (): Promise<{ client: Socket; raw: Socket }> => {
    const incoming = new Promise<Socket>((resolve) => (accepted = resolve));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    return { client, raw: await incoming };
  };

  it('an accepted socket is adopted: 20 MiB through a 512 KiB ring arrive intact, then a clean end', async () => {
    const { client, raw } = await connectPair();
    const { socket, reader } = StreamReader.adopting(raw, RING_BYTES);
    assert.notEqual(socket, raw, 'the handle moved to a socket reading into a fixed buffer');
    assert.equal(socket.listenerCount('data'), 0);
    // Writing back works on the adopted socket too (the receiver's acks).
    const ack = once(client, 'data');
    socket.write(Buffer.from('ack'));
    assert.equal(String((await ack)[0]), 'ack');
    const total = 20 * 1024 * 1024;
    await Promise.all([writePattern(client, total), readPattern(reader, total)]);
    client.destroy();
  });

  it("a connecting socket is read through its 'data' events, with the same result", async () => {
    const { client, raw } = await connectPair();
    raw.resume();
    const reader = new StreamReader(client, RING_BYTES);
    const total = 6 * 1024 * 1024;
    await Promise.all([writePattern(raw, total), readPattern(reader, total)]);
    client.destroy();
  });

  it('an end inside a read is StreamEnded; frames come out whole', async () => {
    const { client, raw } = await connectPair();
    const { reader } = StreamReader.adopting(raw, RING_BYTES);
    const frame = Buffer.alloc(4 + 5);
    frame.writeUInt32BE(5, 0);
    frame.write('hello', 4);
    client.end(Buffer.concat([frame, Buffer.from([0, 0])]));
    const scratch = Buffer.alloc(64);
    assert.equal(String(await reader.readFrame(scratch, 64)), 'hello');
    await assert.rejects(reader.readInto(scratch, 4), (err: Error) => err instanceof StreamEnded && /2 bytes short of a 4-byte read/.test(err.message));
  });
});
