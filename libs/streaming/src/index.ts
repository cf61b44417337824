// @ferry/streaming: the page streamer's logic (PageStreamerService) and its data plane, the
// streamer-to-streamer wire format of page_streamer.proto.
export { PageStreamer, type PageStreamerOptions, type OpenedSession, type Fence } from './page-streamer';
export { DataLink, openSession, type LinkLease, type LinkTarget } from './data-link';
export { sendRound, DEFAULT_SENDER_TIMEOUTS, type SendRoundRequest, type SendRoundStats, type SenderDeps, type SenderTimeouts, type SessionTarget } from './round-sender';
export { sendState, type SendStateRequest, type SendStateStats } from './state-sender';
export { GrpcSendSetSource, NoSendSetSource, type PreparedFinalRound, type SendSetSource, type TakenSendSet } from './send-set-source';
export { ReceiveSession, MAX_REJECTIONS_KEPT, type ReceiveStatusView, type RejectionRecord } from './receive-session';
export { DEFAULT_RECEIVER_OPTIONS, type ReceiverOptions, type ReceivedTotals } from './receive-connection';
export { memoryDigest, type MemoryDigestResult } from './memory-digest';
export { exportDomain, type ExportRequest, type ExportResult, type ExportDeps } from './domain-export';
export { ChunkWritable } from './chunk-writable';
export { streamStateOf, type StreamState } from './driver-state';
export { serveExportDomain, EXPORT_CHUNK_BYTES } from './export-call';
export { BatchEncoder, type EncodedBatch, type BatchEncoderOptions } from './batch-encoder';
export { PeerConnection, type PeerConnectionOptions } from './peer-connection';
export { SendSetCursor } from './send-set-cursor';
export { TokenBucket, systemClock, type BucketClock } from './token-bucket';
export { checkBatchHeader, checkPayload, rawPageCount, type BatchProblem } from './batch-checks';
export { rejectionError, rejectReasonName, batchLabel } from './rejections';
export { parseEndpoint, formatEndpoint } from './endpoint';
export { encodeBatchHeaderFrame, decodeBatchHeader, MalformedHeader, type BatchHeader } from './wire/batch-header';
export { computeChecksum, checksumMatches } from './wire/checksum';
export { frame, PROTOCOL_VERSION, MAX_PAYLOAD_BYTES, MAX_HEADER_FRAME_BYTES, MAX_CONTROL_FRAME_BYTES, LENGTH_PREFIX_BYTES } from './wire/frames';
export { StreamReader, StreamEnded, FrameTooLarge } from './wire/stream-reader';
