// Framing of the streamer-to-streamer data connection (page_streamer.proto, "Data plane"): every
// frame is a 4-byte big-endian length N and N bytes of one protobuf message; a PageBatchHeader
// frame is followed by its payload_length bytes of payload, outside the frame.

import { MAX_BATCH_PAGES, PAGE_SIZE } from '@ferry/hypervisor';

/** The data-plane protocol this code speaks (PageStreamHello.protocol_version). */
export const PROTOCOL_VERSION = 1;

export const LENGTH_PREFIX_BYTES = 4;

/** Hellos and acks are small; anything larger is not a frame of this protocol. */
export const MAX_CONTROL_FRAME_BYTES = 64 * 1024;

/** A header of 1024 pfns takes about 12 KiB (10-byte varints at worst, one encoding byte each). */
export const MAX_HEADER_FRAME_BYTES = 64 * 1024;

/** A full batch of raw pages, plus what zlib may add to incompressible data. */
export const MAX_PAYLOAD_BYTES = MAX_BATCH_PAGES * PAGE_SIZE + 64 * 1024;

/** A message's bytes with the length prefix in front. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + message.byteLength);
  out.writeUInt32BE(message.byteLength, 0);
  out.set(message, LENGTH_PREFIX_BYTES);
  return out;
}
