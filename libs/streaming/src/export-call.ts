// PageStreamerService.ExportDomain over gRPC: the stream's bytes as `data` messages of at most
// 1 MiB, written as fast as the client reads them, then one `summary` message. Stops reading the
// domain as soon as the client goes away.

import type { ServerWritableStream } from '@grpc/grpc-js';
import { XenStreamFormat, type ExportDomainRequest, type ExportDomainResponse } from '@ferry/proto';
import { invalidArgument, toServiceError, type Logger } from '@ferry/runtime';
import type { StreamLayers } from '@ferry/xen-stream';
import { ChunkWritable } from './chunk-writable';
import { aborted } from './errors';
import type { PageStreamer } from './page-streamer';

/** Largest `data` message; gRPC's default receive limit is 4 MiB. */
export const EXPORT_CHUNK_BYTES = 1024 * 1024;

type ExportCall = ServerWritableStream<ExportDomainRequest, ExportDomainResponse>;

export async function serveExportDomain(streamer: PageStreamer, logger: Logger, call: ExportCall): Promise<void> {
  const gone = new AbortController();
  const onGone = () => gone.abort(aborted('CLIENT_GONE', 'the client cancelled the export'));
  call.on('cancelled', onGone);
  call.on('close', onGone);
  try {
    const layers = streamLayers(call.request.format);
    const out = new ChunkWritable(EXPORT_CHUNK_BYTES, (data) => send(call, { part: { $case: 'data', data } }, gone.signal));
    const r = await streamer.exportDomain(call.request.domid, layers, out, gone.signal);
    await send(
      call,
      {
        part: {
          $case: 'summary',
          summary: {
            streamBytes: BigInt(r.streamBytes),
            pages: BigInt(r.pages),
            unpopulatedPages: BigInt(r.unpopulatedPages),
            pageDataRecords: BigInt(r.pageDataRecords),
            vcpuContextBytes: BigInt(r.vcpuContextBytes),
            memoryDigest: r.memoryDigest,
            elapsedMs: BigInt(r.elapsedMs),
          },
        },
      },
      gone.signal,
    );
    call.end();
  } catch (err) {
    if (gone.signal.aborted) return; // nobody to tell
    const se = toServiceError(err);
    logger.warn({ method: 'ExportDomain', code: se.code, err: se.details }, 'request failed');
    call.emit('error', se);
  } finally {
    call.off('cancelled', onGone);
    call.off('close', onGone);
  }
}

function streamLayers(format: XenStreamFormat): StreamLayers {
  switch (format) {
    case XenStreamFormat.XEN_STREAM_FORMAT_UNSPECIFIED:
    case XenStreamFormat.XEN_STREAM_FORMAT_XL:
      return 'xl';
    case XenStreamFormat.XEN_STREAM_FORMAT_LIBXL:
      return 'libxl';
    case XenStreamFormat.XEN_STREAM_FORMAT_LIBXC:
      return 'libxc';
    default:
      throw invalidArgument('BAD_FORMAT', `unknown stream format ${String(format)}`);
  }
}

/** Writes one message; resolves once the call can take more, rejects if the client goes away first. */
function send(call: ExportCall, message: ExportDomainResponse, gone: AbortSignal): Promise<void> {
  if (gone.aborted) return Promise.reject(gone.reason);
  if (call.write(message)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      gone.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      call.off('drain', onDrain);
      reject(gone.reason);
    };
    call.once('drain', onDrain);
    gone.addEventListener('abort', onAbort, { once: true });
  });
}
