// SendState: the suspended domain's vCPU and device state on its own, over the migration's data
// link, ending the stream. The coordinator sends the state with the stop-and-copy round
// (SendRound include_state); this call is for a caller that sent the final round without it.

import { ChecksumAlgorithm, PayloadCompression } from '@ferry/proto';
import { BatchEncoder } from './batch-encoder';
import type { DataLink } from './data-link';
import { expectAck, writeStateBatch, type SenderDeps, type SessionTarget } from './round-sender';

export interface SendStateRequest extends SessionTarget {
  domid: number;
}

export interface SendStateStats {
  stateBytes: number;
  elapsedMs: number;
}

export async function sendState(deps: SenderDeps, req: SendStateRequest, link: DataLink): Promise<SendStateStats> {
  const started = performance.now();
  // EBUSY (FAILED_PRECONDITION) while the domain still runs.
  const state = await deps.driver.getVcpuContext(req.domid);
  const encoder = new BatchEncoder(deps.driver, req.domid, req.migrationId, {
    compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
    checksum: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
  });
  const lease = await link.lease(deps, req, req.signal);
  const conn = lease.conn;
  try {
    const sequence = await writeStateBatch(lease, encoder, state);
    await expectAck(conn, sequence, 'the domain state');
    lease.release(true);
  } catch (err) {
    conn.fail(err instanceof Error ? err : new Error(String(err)));
    lease.release();
    throw err;
  }
  const elapsedMs = Math.max(1, Math.round(performance.now() - started));
  deps.logger.info({ migration_id: req.migrationId, domid: req.domid, stateBytes: state.byteLength, elapsedMs }, 'state sent');
  return { stateBytes: state.byteLength, elapsedMs };
}
