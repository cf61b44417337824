// The balloon manager of one host (BalloonManagerService): one method per RPC, taking and
// returning the proto messages. It owns the freezes of the host's balloons and their fencing: a
// Freeze or Compact binds a domain's balloon to a migration (fencing as in common.proto's Fence),
// Restore and Unfreeze end the binding. Compact is idempotent per (domain, migration): a retry
// returns the first call's result, or joins it while it still runs.
//
// State lives in process memory only. A restarted balloon manager has no freezes (targets stay
// where they were) and no record of original targets, so Restore then falls back to static-max,
// which is the original target of every guest the suite did not balloon itself.

import { status } from '@grpc/grpc-js';
import { FenceTable, requireFence, type FenceLike } from '@ferry/agent';
import { pagesToKiB, xsPaths, type HypervisorDriver } from '@ferry/hypervisor';
import {
  CompactionShortfall,
  CompactionTimeoutAction,
  type CompactRequest,
  type CompactResponse,
  type FreezeRequest,
  type FreezeResponse,
  type GetMemoryRequest,
  type GetMemoryResponse,
  type GuestMemory,
  type RestoreRequest,
  type RestoreResponse,
  type UnfreezeRequest,
  type UnfreezeResponse,
} from '@ferry/proto';
import { FerryError, failedPrecondition, invalidArgument, type Logger } from '@ferry/runtime';
import { BalloonFreeze } from './balloon-freeze';
import { compactGuest, DEFAULT_COMPACTION_SETTINGS, type CompactionSettings } from './compaction';
import { domainInfoOrNotFound, readGuestMemory, toGuestMemory } from './guest-memory';

/** Limits on what a request may ask for. */
export const MAX_SETTLE_TIMEOUT_MS = 60 * 60_000;
export const MAX_HEADROOM_FRACTION = 10;
/** Compaction outcomes remembered for retries (oldest forgotten first). */
const REMEMBERED_OUTCOMES = 1024;

export interface BalloonManagerOptions {
  driver: HypervisorDriver;
  logger: Logger;
  /** Defaults and tunables; unset fields take DEFAULT_COMPACTION_SETTINGS. */
  settings?: Partial<CompactionSettings>;
}

/** What a finished Compact answered, and the target Restore sets back by default. */
interface CompactionRecord {
  response?: CompactResponse;
  error?: FerryError;
  originalTargetKiB: number | null;
}

interface RunningCompaction {
  migrationId: string;
  abort: AbortController;
  done: Promise<CompactResponse>;
}

export class BalloonManager {
  readonly settings: CompactionSettings;
  private readonly driver: HypervisorDriver;
  private readonly logger: Logger;
  private readonly fences = new FenceTable<number>((domid) => `the balloon of domain ${domid}`);
  private readonly freezes = new Map<number, BalloonFreeze>();
  private readonly running = new Map<number, RunningCompaction>();
  private readonly records = new Map<string, CompactionRecord>();

  constructor(opts: BalloonManagerOptions) {
    this.driver = opts.driver;
    this.logger = opts.logger;
    this.settings = { ...DEFAULT_COMPACTION_SETTINGS, ...opts.settings };
  }

  async getMemory(req: GetMemoryRequest): Promise<GetMemoryResponse> {
    return { memory: toGuestMemory(await readGuestMemory(this.driver, req.domid), this.frozenBy(req.domid)) };
  }

  async freeze(req: FreezeRequest): Promise<FreezeResponse> {
    const fence = requireFence(req.fence, 'Freeze');
    await domainInfoOrNotFound(this.driver, req.domid);
    const freeze = this.bindFreeze(req.domid, fence, 'Freeze');
    await freeze.armed;
    return { memory: await this.memory(req.domid) };
  }

  async unfreeze(req: UnfreezeRequest): Promise<UnfreezeResponse> {
    const fence = requireFence(req.fence, 'Unfreeze');
    await this.endFreeze(req.domid, fence, 'Unfreeze', () => undefined);
    return { memory: await this.memory(req.domid) };
  }

  async restore(req: RestoreRequest): Promise<RestoreResponse> {
    const fence = requireFence(req.fence, 'Restore');
    const figures = await readGuestMemory(this.driver, req.domid);
    if (req.targetPages > BigInt(figures.staticMaxPages)) {
      throw invalidArgument(
        'TARGET_ABOVE_STATIC_MAX',
        `target_pages ${req.targetPages} exceeds domain ${req.domid}'s static-max of ${figures.staticMaxPages} pages`,
      );
    }
    await this.endFreeze(req.domid, fence, 'Restore', (original) => {
      if (req.targetPages > 0n) return pagesToKiB(Number(req.targetPages));
      return original ?? this.records.get(recordKey(req.domid, fence))?.originalTargetKiB ?? pagesToKiB(figures.staticMaxPages);
    });
    return { memory: await this.memory(req.domid) };
  }

  async compact(req: CompactRequest): Promise<CompactResponse> {
    const fence = requireFence(req.fence, 'Compact');
    const settings = this.requestSettings(req);
    const key = recordKey(req.domid, fence);
    const record = this.records.get(key);
    if (record) {
      this.fences.check(req.domid, fence, 'Compact');
      if (record.error) throw record.error;
      return record.response!;
    }
    const inFlight = this.running.get(req.domid);
    if (inFlight?.migrationId === fence.migrationId) {
      this.fences.admit(req.domid, fence, 'Compact');
      return inFlight.done;
    }
    return this.startCompaction(req, fence, settings);
  }

  /** Ends every freeze (targets stay where they are) and cancels running compactions: shutdown. */
  async close(): Promise<void> {
    for (const r of this.running.values()) r.abort.abort();
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await Promise.allSettled([...this.freezes.values()].map((f) => f.release()));
    this.freezes.clear();
  }

  private async startCompaction(req: CompactRequest, fence: FenceLike, settings: CompactionSettings): Promise<CompactResponse> {
    const info = await domainInfoOrNotFound(this.driver, req.domid);
    if (info.state !== 'running') {
      throw failedPrecondition('DOMAIN_NOT_RUNNING', `domain ${req.domid} is ${info.state}; only a running guest can move its balloon`);
    }
    if (info.logDirty) {
      throw failedPrecondition(
        'LOG_DIRTY_ENABLED',
        `log-dirty mode is on for domain ${req.domid}: compaction must finish before pre-copy starts`,
      );
    }
    // Another call may have started while we looked: join it (same migration) or be refused by the fence.
    const inFlight = this.running.get(req.domid);
    if (inFlight?.migrationId === fence.migrationId) {
      this.fences.admit(req.domid, fence, 'Compact');
      return inFlight.done;
    }
    const freeze = this.bindFreeze(req.domid, fence, 'Compact');
    const abort = new AbortController();
    const done = this.runCompaction(req, fence, freeze, settings, abort.signal);
    const entry: RunningCompaction = { migrationId: fence.migrationId, abort, done };
    this.running.set(req.domid, entry);
    void done.then(
      () => this.running.get(req.domid) === entry && this.running.delete(req.domid),
      () => this.running.get(req.domid) === entry && this.running.delete(req.domid),
    );
    return done;
  }

  private async runCompaction(
    req: CompactRequest,
    fence: FenceLike,
    freeze: BalloonFreeze,
    settings: CompactionSettings,
    signal: AbortSignal,
  ): Promise<CompactResponse> {
    const key = recordKey(req.domid, fence);
    const remember = (r: Omit<CompactionRecord, 'originalTargetKiB'>) => {
      this.records.set(key, { ...r, originalTargetKiB: freeze.originalTargetKiB });
      if (this.records.size > REMEMBERED_OUTCOMES) this.records.delete(this.records.keys().next().value!);
    };
    const log = this.logger.child({ migration_id: fence.migrationId, domid: req.domid });
    const { result, after, cancelled } = await compactGuest(this.driver, freeze, settings, signal);
    log.info(
      {
        reached: result.reached,
        releasedPages: Number(result.releasedPages),
        targetPages: Number(result.targetPages),
        elapsedMs: Number(result.elapsedMs),
        shortfall: CompactionShortfall[result.shortfall],
        reason: result.reason || undefined,
      },
      'compaction finished',
    );
    if (cancelled) {
      const error = new FerryError(status.CANCELLED, 'COMPACTION_CANCELLED', `compaction of domain ${req.domid} was cancelled: ${result.reason}`);
      remember({ error });
      throw error;
    }
    const shortfall = result.shortfall;
    const failing =
      !result.reached &&
      shortfall !== CompactionShortfall.COMPACTION_SHORTFALL_NOTHING_TO_RELEASE &&
      req.onTimeout === CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL;
    if (failing) {
      // Cancel cleanly: the guest gets its original target back and the balloon is free again.
      await this.thaw(req.domid, fence.migrationId, (original) => original ?? undefined);
      const code =
        shortfall === CompactionShortfall.COMPACTION_SHORTFALL_FREE_MEMORY_UNKNOWN ? status.FAILED_PRECONDITION : status.DEADLINE_EXCEEDED;
      const reason = `COMPACTION_${CompactionShortfall[shortfall].replace('COMPACTION_SHORTFALL_', '')}`;
      const error = new FerryError(
        code,
        reason,
        `compaction of domain ${req.domid} fell short and the request says FAIL: ${result.reason} (released ${result.releasedPages} pages; target restored to ${result.originalTargetPages})`,
      );
      remember({ error });
      throw error;
    }
    const response: CompactResponse = { result, memory: toGuestMemory(after, this.frozenBy(req.domid)) };
    remember({ response });
    return response;
  }

  /** Binds the balloon to the fence's migration and freezes it (synchronously, so checks cannot interleave). */
  private bindFreeze(domid: number, fence: FenceLike, what: string): BalloonFreeze {
    this.fences.admit(domid, fence, what);
    const existing = this.freezes.get(domid);
    if (existing) return existing;
    const freeze = new BalloonFreeze(this.driver, domid, fence.migrationId, this.logger, () => this.forget(domid, freeze));
    this.freezes.set(domid, freeze);
    freeze.armed.catch(() => this.forget(domid, freeze));
    this.logger.info({ domid, migration_id: fence.migrationId }, 'balloon frozen');
    return freeze;
  }

  /**
   * Ends the fence's freeze of `domid` for a Restore or Unfreeze, cancelling the migration's
   * compaction first if one still runs; the target is set as in thaw().
   */
  private async endFreeze(
    domid: number,
    fence: FenceLike,
    what: string,
    finalKiB: (originalKiB: number | null) => number | undefined,
  ): Promise<void> {
    this.fences.check(domid, fence, what);
    const running = this.running.get(domid); // necessarily this migration's: it holds the fence
    if (running) {
      running.abort.abort();
      await running.done.catch(() => {});
    }
    await this.thaw(domid, fence.migrationId, finalKiB);
  }

  /**
   * Unfreezes `domid`, setting memory/target to what `finalKiB(original)` returns or leaving it
   * where it is when that is undefined. Without a freeze (the target host of a migration, or a
   * retry) the target is still written.
   */
  private async thaw(domid: number, migrationId: string, finalKiB: (originalKiB: number | null) => number | undefined): Promise<void> {
    const freeze = this.freezes.get(domid);
    if (!freeze) {
      this.fences.forget(domid);
      const target = finalKiB(null);
      if (target !== undefined) await this.driver.xenstoreWrite(xsPaths.memoryTarget(domid), String(target));
      return;
    }
    await freeze.armed.catch(() => {});
    const target = finalKiB(freeze.originalTargetKiB);
    this.forget(domid, freeze);
    await freeze.release(target);
    this.logger.info({ domid, migration_id: migrationId, targetKiB: target, putBacks: freeze.putBacks }, 'balloon unfrozen');
  }

  private forget(domid: number, freeze: BalloonFreeze): void {
    if (this.freezes.get(domid) !== freeze) return;
    this.freezes.delete(domid);
    this.fences.forget(domid);
  }

  private frozenBy(domid: number): string | undefined {
    return this.freezes.get(domid)?.migrationId;
  }

  private async memory(domid: number): Promise<GuestMemory> {
    return toGuestMemory(await readGuestMemory(this.driver, domid), this.frozenBy(domid));
  }

  private requestSettings(req: CompactRequest): CompactionSettings {
    const s = { ...this.settings };
    if (req.headroomFraction !== 0) {
      if (!(Number.isFinite(req.headroomFraction) && req.headroomFraction > 0 && req.headroomFraction <= MAX_HEADROOM_FRACTION)) {
        throw invalidArgument('INVALID_HEADROOM', `headroom_fraction must be in (0, ${MAX_HEADROOM_FRACTION}] (0 = default), got ${req.headroomFraction}`);
      }
      s.headroomFraction = req.headroomFraction;
    }
    if (req.settleTimeoutMs !== 0n) {
      if (req.settleTimeoutMs > BigInt(MAX_SETTLE_TIMEOUT_MS)) {
        throw invalidArgument('INVALID_SETTLE_TIMEOUT', `settle_timeout_ms must be at most ${MAX_SETTLE_TIMEOUT_MS}, got ${req.settleTimeoutMs}`);
      }
      s.settleTimeoutMs = Number(req.settleTimeoutMs);
    }
    switch (req.onTimeout) {
      case CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_UNSPECIFIED:
      case CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_CONTINUE:
      case CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_FAIL:
        break;
      default:
        throw invalidArgument('INVALID_TIMEOUT_ACTION', `on_timeout ${req.onTimeout} is not a CompactionTimeoutAction`);
    }
    return s;
  }
}

function recordKey(domid: number, fence: FenceLike): string {
  return `${domid}/${fence.migrationId}`;
}
