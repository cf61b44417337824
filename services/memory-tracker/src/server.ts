// ferry.v1.MemoryTrackerService over @ferry/tracker: proto messages in, library calls, proto out.

import type { HypervisorDriver } from '@ferry/hypervisor';
import type { PolicyName } from '@ferry/policy';
import {
  MemoryTrackerService,
  MigrationPolicy,
  type Fence as FenceMessage,
  type MemoryTrackerServer,
  type PrepareRoundResponse,
  type TakeSendSetResponse,
  type TrackingPolicy,
} from '@ferry/proto';
import { invalidArgument, startGrpcServer, unary, type Logger } from '@ferry/runtime';
import { MemoryTracker, type Fence, type RoundCounts, type SendSet } from '@ferry/tracker';
import { MemoryTrackerMetrics, observedMemoryTracker } from './observability';

export function memoryTrackerHandlers(tracker: MemoryTracker, logger: Logger): MemoryTrackerServer {
  return {
    startTracking: unary(logger, 'StartTracking', async (req) => {
      const started = await tracker.startTracking(fenceOf(req.fence), req.domid, trackingPolicyOf(req.policy));
      return { maxPages: BigInt(started.maxPages), populatedPages: BigInt(started.populatedPages) };
    }),
    prepareRound: unary(logger, 'PrepareRound', async (req) => {
      const fence = fenceOf(req.fence);
      if (!req.takeSendSet) return countsMessage(await tracker.prepareRound(fence, req.round, req.final));
      const { counts, sendSet } = await tracker.prepareAndTake(fence, req.round, req.final);
      return { ...countsMessage(counts), sendSet: sendSetMessage(sendSet) };
    }),
    takeSendSet: unary(logger, 'TakeSendSet', async (req) => sendSetMessage(await tracker.takeSendSet(req.migrationId, req.round))),
    stopTracking: unary(logger, 'StopTracking', async (req) => ({ stopped: await tracker.stopTracking(fenceOf(req.fence)) })),
    probeDirtyRate: unary(logger, 'ProbeDirtyRate', async (req) => {
      const r = await tracker.probeDirtyRate({
        domid: req.domid,
        durationMs: safeNumber(req.durationMs, 'duration_ms'),
        intervalMs: safeNumber(req.intervalMs, 'interval_ms'),
      });
      return {
        durationMs: BigInt(r.durationMs),
        samples: r.samples,
        meanPagesPerSecond: r.meanPagesPerSecond,
        peakPagesPerSecond: r.peakPagesPerSecond,
        distinctPages: BigInt(r.distinctPages),
        populatedPages: BigInt(r.populatedPages),
      };
    }),
  };
}

export interface MemoryTrackerServerHandle {
  address: string;
  tracker: MemoryTracker;
  /** Stops serving and turns log-dirty off for every tracked migration (the driver stays open). */
  stop(): Promise<void>;
}

export async function startMemoryTrackerServer(opts: {
  address: string;
  driver: HypervisorDriver;
  logger: Logger;
  metrics?: MemoryTrackerMetrics;
}): Promise<MemoryTrackerServerHandle> {
  const tracker = new MemoryTracker(opts.driver, opts.logger);
  const handlers = observedMemoryTracker(memoryTrackerHandlers(tracker, opts.logger), opts.metrics ?? new MemoryTrackerMetrics());
  const server = await startGrpcServer({
    address: opts.address,
    logger: opts.logger,
    services: [{ name: 'ferry.v1.MemoryTrackerService', definition: MemoryTrackerService, implementation: handlers }],
  });
  return {
    address: server.address,
    tracker,
    stop: async () => {
      await server.shutdown();
      await tracker.stopAll();
    },
  };
}

const POLICY_NAMES: Partial<Record<MigrationPolicy, PolicyName>> = {
  [MigrationPolicy.MIGRATION_POLICY_XEN_4_17]: 'xen-4.17',
  [MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY]: 'xen-legacy',
  [MigrationPolicy.MIGRATION_POLICY_LAYERED]: 'layered',
};

function trackingPolicyOf(policy: TrackingPolicy | undefined) {
  const name = policy ? POLICY_NAMES[policy.policy] : undefined;
  if (!name) {
    throw invalidArgument('POLICY_REQUIRED', `policy.policy must be XEN_4_17, XEN_LEGACY or LAYERED, got ${policy ? MigrationPolicy[policy.policy] ?? policy.policy : 'none'}`);
  }
  const l = policy?.layered;
  return { policy: name, layered: l ? { window: l.window, threshold: l.threshold, demoteAfter: l.demoteAfter } : undefined };
}

function fenceOf(fence: FenceMessage | undefined): Fence {
  if (!fence) throw invalidArgument('FENCE_REQUIRED', 'fence is required');
  return { migrationId: fence.migrationId, epoch: fence.epoch };
}

function safeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument('VALUE_TOO_LARGE', `${field} is too large: ${value}`);
  return Number(value);
}

function countsMessage(c: RoundCounts): PrepareRoundResponse {
  return {
    round: c.round,
    dirtyCount: BigInt(c.dirtyCount),
    faultCount: BigInt(c.faultCount),
    pagesToSend: BigInt(c.pagesToSend),
    pagesDeferred: BigInt(c.pagesDeferred),
    pagesReleased: BigInt(c.pagesReleased),
    pagesSkipped: 0n,
    layers: { cold: BigInt(c.layers.cold), warm: BigInt(c.layers.warm), hot: BigInt(c.layers.hot) },
    populatedPages: BigInt(c.populatedPages),
    elapsedMs: BigInt(c.elapsedMs),
  };
}

function sendSetMessage(set: SendSet): TakeSendSetResponse {
  return {
    bitmap: Buffer.from(set.bitmap.buffer, set.bitmap.byteOffset, set.bitmap.byteLength),
    pageCount: BigInt(set.pageCount),
    maxPages: BigInt(set.maxPages),
    domid: set.domid,
    final: set.final,
    skipRedirtiedPages: set.skipRedirtiedPages,
  };
}
