// The memory tracker of one host: the tracking sessions of the migrations leaving this host, keyed
// by migration id, each bound to one domain. It checks fences, keeps a domain to one migration (or
// one probe) at a time, and runs each migration's calls one after another.

import { status } from '@grpc/grpc-js';
import { HypervisorError, type HypervisorDriver } from '@ferry/hypervisor';
import { FerryError, failedPrecondition, invalidArgument, notFound, type Logger } from '@ferry/runtime';
import { probeDirtyRate, type DirtyRateProbeResult } from './dirty-rate-probe';
import { KeyedQueue } from './keyed-queue';
import { enableLogDirty } from './log-dirty';
import { resolveTrackingConfig, sameTrackingConfig, type TrackingPolicyRequest } from './tracking-config';
import { TrackingSession, type RoundCounts, type SendSet } from './tracking-session';

export interface Fence {
  migrationId: string;
  epoch: bigint;
}

export interface StartTrackingResult {
  maxPages: number;
  populatedPages: number;
}

export interface ProbeRequest {
  domid: number;
  /** 0 = DEFAULT_PROBE_DURATION_MS. */
  durationMs: number;
  /** 0 = DEFAULT_PROBE_INTERVAL_MS; capped at the duration. */
  intervalMs: number;
}

export const DEFAULT_PROBE_DURATION_MS = 1000;
export const DEFAULT_PROBE_INTERVAL_MS = 200;
export const MAX_PROBE_DURATION_MS = 10 * 60_000;
export const MIN_PROBE_INTERVAL_MS = 10;

export class MemoryTracker {
  private readonly sessions = new Map<string, TrackingSession>();
  /** Domain → the migration tracking it (set before the first await of StartTracking). */
  private readonly domainOwners = new Map<number, string>();
  private readonly probing = new Set<number>();
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly driver: HypervisorDriver,
    private readonly logger: Logger,
  ) {}

  async startTracking(fence: Fence, domid: number, policy: TrackingPolicyRequest): Promise<StartTrackingResult> {
    checkFence(fence);
    checkDomid(domid);
    const config = resolveTrackingConfig(policy);
    return this.queue.run(fence.migrationId, async () => {
      const existing = this.sessions.get(fence.migrationId);
      if (existing) {
        acceptEpoch(existing, fence);
        if (existing.domid !== domid) {
          throw failedPrecondition(
            'MIGRATION_TRACKS_OTHER_DOMAIN',
            `migration ${fence.migrationId} already tracks domain ${existing.domid}, not ${domid}`,
          );
        }
        if (!sameTrackingConfig(existing.config, config)) {
          throw failedPrecondition('TRACKING_POLICY_MISMATCH', `migration ${fence.migrationId} already tracks with policy ${existing.config.policy} and other parameters`);
        }
        return { maxPages: existing.maxPages, populatedPages: existing.populatedAtStart };
      }
      this.claimDomain(domid, fence.migrationId);
      try {
        const info = await domainInfo(this.driver, domid);
        await enableLogDirty(this.driver, domid);
        const session = new TrackingSession(this.driver, fence.migrationId, domid, info.maxPages, info.nrPages, config, fence.epoch);
        this.sessions.set(fence.migrationId, session);
        this.logger.info({ migration_id: fence.migrationId, domid, policy: config.policy, maxPages: info.maxPages }, 'tracking started');
        return { maxPages: info.maxPages, populatedPages: info.nrPages };
      } catch (err) {
        this.domainOwners.delete(domid);
        throw err;
      }
    });
  }

  async prepareRound(fence: Fence, round: number, final: boolean): Promise<RoundCounts> {
    checkRound(fence, round);
    return this.queue.run(fence.migrationId, async () => this.prepareInSession(fence, round, final));
  }

  /**
   * PrepareRound and TakeSendSet of the same round in one turn of the migration's queue: the page
   * streamer's stop-and-copy round, so the downtime window holds one call to this process, not two.
   */
  async prepareAndTake(fence: Fence, round: number, final: boolean): Promise<{ counts: RoundCounts; sendSet: SendSet }> {
    checkRound(fence, round);
    return this.queue.run(fence.migrationId, async () => {
      const counts = await this.prepareInSession(fence, round, final);
      return { counts, sendSet: this.session(fence.migrationId).takeSendSet(round) };
    });
  }

  private async prepareInSession(fence: Fence, round: number, final: boolean): Promise<RoundCounts> {
    const session = this.session(fence.migrationId);
    acceptEpoch(session, fence);
    const counts = await session.prepareRound(round, final).catch((err: unknown) => {
      throw domainGone(err, session.domid);
    });
    this.logger.debug({ migration_id: fence.migrationId, ...counts }, 'round prepared');
    return counts;
  }

  async takeSendSet(migrationId: string, round: number): Promise<SendSet> {
    if (!migrationId) throw invalidArgument('MIGRATION_ID_REQUIRED', 'migration_id is required');
    return this.queue.run(migrationId, async () => this.session(migrationId).takeSendSet(round));
  }

  /** Log-dirty off and the migration forgotten; false when it was not tracked. */
  async stopTracking(fence: Fence): Promise<boolean> {
    checkFence(fence);
    return this.queue.run(fence.migrationId, async () => {
      const session = this.sessions.get(fence.migrationId);
      if (!session) return false;
      acceptEpoch(session, fence);
      await this.drop(session);
      return true;
    });
  }

  async probeDirtyRate(request: ProbeRequest): Promise<DirtyRateProbeResult> {
    checkDomid(request.domid);
    const durationMs = request.durationMs || DEFAULT_PROBE_DURATION_MS;
    if (durationMs > MAX_PROBE_DURATION_MS) {
      throw invalidArgument('PROBE_TOO_LONG', `duration_ms ${durationMs} exceeds ${MAX_PROBE_DURATION_MS}`);
    }
    const intervalMs = Math.min(Math.max(request.intervalMs || DEFAULT_PROBE_INTERVAL_MS, MIN_PROBE_INTERVAL_MS), durationMs);
    const owner = this.domainOwners.get(request.domid);
    if (owner !== undefined) {
      throw failedPrecondition('DOMAIN_TRACKED', `domain ${request.domid} is being tracked by migration ${owner}`);
    }
    if (this.probing.has(request.domid)) {
      throw failedPrecondition('PROBE_IN_PROGRESS', `domain ${request.domid} is being probed already`);
    }
    this.probing.add(request.domid);
    try {
      await domainInfo(this.driver, request.domid);
      return await probeDirtyRate(this.driver, request.domid, { durationMs, intervalMs });
    } finally {
      this.probing.delete(request.domid);
    }
  }

  /** The migrations being tracked (for logs and tests). */
  trackedMigrations(): string[] {
    return [...this.sessions.keys()];
  }

  /** Process shutdown: log-dirty off everywhere. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => this.queue.run(s.migrationId, () => this.drop(s))));
  }

  private async drop(session: TrackingSession): Promise<void> {
    // The state goes whatever the hypervisor says: a destroyed domain has no log-dirty to turn off.
    this.sessions.delete(session.migrationId);
    this.domainOwners.delete(session.domid);
    try {
      await this.driver.logDirtyDisable(session.domid);
    } catch (err) {
      if (!(err instanceof HypervisorError && err.code === 'ESRCH')) {
        this.logger.warn({ migration_id: session.migrationId, domid: session.domid, err: String(err) }, 'turning log-dirty off failed');
      }
    }
    this.logger.info({ migration_id: session.migrationId, domid: session.domid }, 'tracking stopped');
  }

  private claimDomain(domid: number, migrationId: string): void {
    const owner = this.domainOwners.get(domid);
    if (owner !== undefined && owner !== migrationId) {
      throw failedPrecondition('DOMAIN_TRACKED', `domain ${domid} is being tracked by migration ${owner}`);
    }
    if (this.probing.has(domid)) throw failedPrecondition('PROBE_IN_PROGRESS', `domain ${domid} is being probed for its dirty rate`);
    this.domainOwners.set(domid, migrationId);
  }

  private session(migrationId: string): TrackingSession {
    const session = this.sessions.get(migrationId);
    if (!session) throw notFound('MIGRATION_NOT_TRACKED', `migration ${migrationId} is not being tracked on this host`);
    return session;
  }
}

function checkFence(fence: Fence): void {
  if (!fence.migrationId) throw invalidArgument('FENCE_REQUIRED', 'fence.migration_id is required');
  if (fence.epoch <= 0n) throw invalidArgument('FENCE_REQUIRED', 'fence.epoch must be positive');
}

function checkRound(fence: Fence, round: number): void {
  checkFence(fence);
  if (!Number.isInteger(round) || round < 0) throw invalidArgument('BAD_ROUND', `round must be a non-negative integer, got ${round}`);
}

function checkDomid(domid: number): void {
  if (!Number.isInteger(domid) || domid <= 0) throw invalidArgument('BAD_DOMID', `domid must be a guest domain (> 0), got ${domid}`);
}

/** A lower epoch is a stale coordinator; an equal or higher one is accepted and remembered. */
function acceptEpoch(session: TrackingSession, fence: Fence): void {
  if (fence.epoch < session.epoch) {
    throw new FerryError(
      status.ABORTED,
      'STALE_EPOCH',
      `migration ${fence.migrationId}: epoch ${fence.epoch} is older than the accepted epoch ${session.epoch}`,
    );
  }
  session.epoch = fence.epoch;
}

async function domainInfo(driver: HypervisorDriver, domid: number) {
  try {
    return await driver.domainInfo(domid);
  } catch (err) {
    throw domainGone(err, domid);
  }
}

function domainGone(err: unknown, domid: number): unknown {
  if (err instanceof HypervisorError && err.code === 'ESRCH') return notFound('DOMAIN_NOT_FOUND', `domain ${domid}: ${err.message}`);
  return err;
}
