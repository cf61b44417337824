// The source side of SendState: read the suspended domain's vCPU and device state and send it as
// one VCPU_STATE batch; done when the receiver acknowledges having loaded it into its domain.

import { ChecksumAlgorithm, PageBatchFlag, PayloadCompression } from '@ferry/proto';
import { BatchEncoder } from './batch-encoder';
import { internal } from './errors';
import { openSession, type SenderDeps, type SessionTarget } from './round-sender';

export interface SendStateRequest extends SessionTarget {
  domid: number;
}

export interface SendStateStats {
  stateBytes: number;
  elapsedMs: number;
}

export async function sendState(deps: SenderDeps, req: SendStateRequest): Promise<SendStateStats> {
  const started = performance.now();
  // EBUSY (FAILED_PRECONDITION) while the domain still runs.
  const state = await deps.driver.getVcpuContext(req.domid);
  const encoder = new BatchEncoder(deps.driver, req.domid, req.migrationId, {
    compression: PayloadCompression.PAYLOAD_COMPRESSION_NONE,
    checksum: ChecksumAlgorithm.CHECKSUM_ALGORITHM_CRC32,
  });
  const conn = await openSession(deps, req);
  try {
    const batch = encoder.encodeState(1, PageBatchFlag.PAGE_BATCH_FLAG_VCPU_STATE | PageBatchFlag.PAGE_BATCH_FLAG_END_OF_STREAM, state);
    await conn.write(batch.frame);
    if (batch.payload.length > 0) await conn.write(batch.payload);
    const ack = await conn.nextAck();
    if (ack.sequence !== 1n) throw internal('UNEXPECTED_ACK', `the receiver acknowledged batch ${ack.sequence}, expected the state (batch 1)`);
    conn.close();
  } catch (err) {
    conn.fail(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  const elapsedMs = Math.max(1, Math.round(performance.now() - started));
  deps.logger.info({ migration_id: req.migrationId, domid: req.domid, stateBytes: state.byteLength, elapsedMs }, 'state sent');
  return { stateBytes: state.byteLength, elapsedMs };
}
