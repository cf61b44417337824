// How a migration calls the per-host services: every call is one step, fenced with the migration
// id and epoch (so a retry is safe and a stale coordinator is refused), checked for a cancel or a
// shutdown before it starts, retried while the host is unreachable (re-resolving the host in the
// registry in case its services moved), and turned into a MigrationFailure with a code when it
// fails for good.

import type { Fence } from '@ferry/proto';
import { FailureCode } from '@ferry/proto';
import type { Logger } from '@ferry/runtime';
import type { HostClients, HostDirectory } from './host-directory';
import type { MigrationJournal } from './journal';
import type { MigrationTrace } from './tracing';
import { CoordinatorStopping, MigrationCancelled, classifyStepError, describeError, isTransient } from './failures';

/** Everything a migration's run works with. */
export interface RunContext {
  journal: MigrationJournal;
  hosts: HostDirectory;
  logger: Logger;
  trace: MigrationTrace;
  fence: Fence;
  /** Aborted by CancelMigration. */
  cancel: AbortSignal;
  /** Aborted when the coordinator shuts down. */
  stopping: AbortSignal;
  timing: StepTiming;
}

export interface StepTiming {
  /** Deadline of quick calls (pause, tracking, sessions, checks). */
  callDeadlineMs: number;
  /** Deadline of streaming one round (bandwidth-capped rounds of big domains take a while). */
  roundDeadlineMs: number;
  /** Retries of a call whose host is unreachable, before the migration fails. */
  unreachableAttempts: number;
  /** First retry delay; it doubles up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_TIMING: StepTiming = {
  callDeadlineMs: 60_000,
  roundDeadlineMs: 3_600_000,
  unreachableAttempts: 5,
  backoffMs: 250,
  maxBackoffMs: 5_000,
};

export interface StepOptions {
  /** What the step's failure is, unless the error says more (see classifyStepError). */
  failure: FailureCode;
  /** A cancel may interrupt the call itself (streaming, compaction); otherwise it waits for it. */
  interruptible?: boolean;
  /** Also check for a cancel before the call (false for the steps of a rollback or roll-forward). */
  cancellable?: boolean;
  /** Retry while unreachable until the coordinator stops (essential steps after the commit point). */
  persistent?: boolean;
  /** Attempts while unreachable, instead of StepTiming.unreachableAttempts. */
  attempts?: number;
  /**
   * The call reaches through to the other host (streaming to the peer): UNAVAILABLE may then mean
   * either side, so it keeps the step's own failure code instead of HOST_UNREACHABLE.
   */
  throughPeer?: boolean;
}

export type StepCall<T> = (host: HostClients, signal: AbortSignal) => Promise<T>;

export class Steps {
  constructor(private readonly ctx: RunContext) {}

  /** Throws at a step boundary: CoordinatorStopping on shutdown, MigrationCancelled after a cancel. */
  checkpoint(cancellable = true): void {
    if (this.ctx.stopping.aborted) throw new CoordinatorStopping();
    if (cancellable && this.ctx.cancel.aborted) throw new MigrationCancelled(this.ctx.journal.current.cancelReason || 'cancelled');
  }

  /** One call to a per-host service; see the file comment. */
  async call<T>(step: string, hostName: string, opts: StepOptions, fn: StepCall<T>): Promise<T> {
    const cancellable = opts.cancellable ?? true;
    const signal = opts.interruptible && cancellable ? AbortSignal.any([this.ctx.cancel, this.ctx.stopping]) : this.ctx.stopping;
    let delay = this.ctx.timing.backoffMs;
    for (let attempt = 1; ; attempt++) {
      this.checkpoint(cancellable);
      try {
        const started = performance.now();
        const host = await this.ctx.hosts.get(hostName, { refresh: attempt > 1 });
        const result = await this.ctx.trace.run(() => fn(host, signal));
        this.ctx.logger.debug({ step, host: hostName, elapsed_ms: Math.round(performance.now() - started) }, 'step done');
        return result;
      } catch (err) {
        this.checkpoint(cancellable);
        const retry = isTransient(err) && (opts.persistent || attempt < (opts.attempts ?? this.ctx.timing.unreachableAttempts));
        if (!retry) throw classifyStepError(err, opts.failure, step, hostName, opts.throughPeer);
        this.ctx.logger.warn({ step, host: hostName, attempt, err: describeError(err) }, 'host unreachable; retrying');
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.ctx.timing.maxBackoffMs);
      }
    }
  }

  /** Waits, waking early on shutdown. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.ctx.stopping.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.ctx.stopping.addEventListener('abort', done, { once: true });
    });
  }
}
