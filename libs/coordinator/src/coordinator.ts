// The migration coordinator: the public MigrationService's logic. It validates and admits
// migrations, runs each one (MigrationRun) as the single writer of its record, answers queries,
// and on start takes over whatever a previous coordinator left unfinished (records in NATS KV).
//
// Admission (see admission.ts): one migration per domain (a second one is refused with
// FAILED_PRECONDITION, reason MIGRATION_IN_FLIGHT); caps per cluster / source / target queue the
// migration in PENDING until slots free up. StartMigration calls are decided one at a time.

import { context } from '@opentelemetry/api';
import type { NatsConnection } from '@nats-io/transport-node';
import { MigrationEvents, MigrationRecordConflict, MigrationRecords, isValidMigrationId, type VersionedMigration } from '@ferry/cluster';
import {
  Migration,
  MigrationOutcome,
  MigrationPhase,
  MigrationRole,
  CheckMigrationRequest,
  type CancelMigrationRequest,
  type CreateDomainRequest,
  type CreateDomainResponse,
  type Domain,
  type ListDomainsRequest,
  type ListDomainsResponse,
  type ListMigrationsRequest,
  type ListMigrationsResponse,
  type MigrationEvent,
  MigrationPolicy,
  type PreflightReason,
  type StartMigrationRequest,
  type StartMigrationResponse,
  type HostStatus,
  PreflightCode,
} from '@ferry/proto';
import { FerryError, failedPrecondition, invalidArgument, notFound, unavailable, type Logger } from '@ferry/runtime';
import { Admission, DEFAULT_CAPS, type AdmissionCaps } from './admission';
import { ClusterQueries } from './cluster-queries';
import { CoordinatorStopping, MigrationCancelled, describeError } from './failures';
import { unaryCall } from './grpc-unary';
import { HostDirectory } from './host-directory';
import { newMigrationId } from './ids';
import { MigrationJournal } from './journal';
import { pageOf } from './migration-list';
import { MigrationRun } from './migration-run';
import { memoryPagesOf } from './domain-memory';
import { validateStartRequest } from './options';
import { cancelEffect, isEnded, outcomeName, phaseName, recoveryPlan, type CancelEffect } from './phases';
import { failureRecord } from './rollback';
import { DEFAULT_TIMING, type RunContext, type StepTiming } from './steps';
import { MigrationTrace, contextOf } from './tracing';

export interface CoordinatorConfig {
  caps: AdmissionCaps;
  /** The policy of requests that name none. */
  defaultPolicy: MigrationPolicy;
  timing: StepTiming;
  /** Deadline of queries to host agents (lookups, ListHosts, ListDomains). */
  queryDeadlineMs: number;
  /** Deadline of CreateDomain (a guest boots). */
  createDomainDeadlineMs: number;
  /** Delay before a run that crashed (e.g. NATS was briefly away) is taken over again. */
  readoptDelayMs: number;
}

export const DEFAULT_CONFIG: CoordinatorConfig = {
  caps: DEFAULT_CAPS,
  defaultPolicy: MigrationPolicy.MIGRATION_POLICY_LAYERED,
  timing: DEFAULT_TIMING,
  queryDeadlineMs: 5_000,
  createDomainDeadlineMs: 120_000,
  readoptDelayMs: 5_000,
};

/** Times a run that stopped unexpectedly is taken over again before it is left to an operator. */
const MAX_READOPTIONS = 5;

/** Ended records newer than this are checked for a terminal event a crash left unpublished. */
const REPUBLISH_WINDOW_MS = 24 * 3600_000;

interface ActiveMigration {
  id: string;
  journal: MigrationJournal;
  trace: MigrationTrace;
  cancel: AbortController;
  source: string;
  target: string;
  /** `host/name` keys of the domain on both sides: one migration per domain. */
  domainKeys: string[];
  done?: Promise<void>;
}

const domainKey = (host: string, name: string) => `${host}/${name}`;

/** Thrown inside a journal write to skip it: the cancel needs no change. */
class CancelNotApplied extends Error {
  constructor(readonly effect: CancelEffect) {
    super(effect);
  }
}

export class Coordinator {
  private readonly active = new Map<string, ActiveMigration>();
  private readonly domains = new Map<string, string>();
  private readonly admission: Admission;
  private readonly stopping = new AbortController();
  private readonly queries: ClusterQueries;
  private startQueue: Promise<unknown> = Promise.resolve();
  private readonly readoptions = new Map<string, number>();

  private constructor(
    private readonly records: MigrationRecords,
    private readonly events: MigrationEvents,
    private readonly hosts: HostDirectory,
    private readonly logger: Logger,
    private readonly config: CoordinatorConfig,
  ) {
    this.admission = new Admission(config.caps);
    this.queries = new ClusterQueries(hosts, config.queryDeadlineMs);
  }

  /** Opens the records and events, and takes over unfinished migrations. */
  static async start(opts: { nc: NatsConnection; logger: Logger; config?: Partial<CoordinatorConfig> }): Promise<Coordinator> {
    const config = { ...DEFAULT_CONFIG, ...opts.config };
    const [records, events] = await Promise.all([MigrationRecords.open(opts.nc), MigrationEvents.open(opts.nc)]);
    const c = new Coordinator(records, events, new HostDirectory(opts.nc), opts.logger, config);
    await c.recover();
    return c;
  }

  // ---- StartMigration ---------------------------------------------------------------------

  /** Validates, admits and starts a migration; returns its record in phase PENDING. */
  startMigration(req: StartMigrationRequest): Promise<StartMigrationResponse> {
    // One decision at a time: the in-flight and idempotency checks cannot race.
    const next = this.startQueue.then(() => this.decideStart(req));
    this.startQueue = next.catch(() => {});
    return next;
  }

  private async decideStart(req: StartMigrationRequest): Promise<StartMigrationResponse> {
    if (this.stopping.signal.aborted) throw unavailable('SHUTTING_DOWN', 'the coordinator is shutting down');
    const r = validateStartRequest(req, this.config.defaultPolicy);
    if (r.requestId && !r.validateOnly) {
      const earlier = await this.records.lookupRequestId(r.requestId);
      const existing = earlier ? await this.find(earlier) : undefined;
      if (existing) return { migration: existing, created: false, preflightReasons: [] };
    }
    const target = await this.hosts.lookup(r.targetHost);
    if (!target) throw notFound('HOST_NOT_FOUND', `target host "${r.targetHost}" is not registered in the cluster`);
    const domain = await this.locateDomain(r.domainName, r.sourceHost);
    const source = domain.host;
    if (source === r.targetHost) {
      throw invalidArgument('SAME_HOST', `domain "${r.domainName}" already runs on ${source}; the target must be another host`);
    }
    const holder = this.domains.get(domainKey(source, r.domainName)) ?? this.domains.get(domainKey(r.targetHost, r.domainName));
    if (holder) throw failedPrecondition('MIGRATION_IN_FLIGHT', `domain "${r.domainName}" is already migrating (migration ${holder})`);
    if (domain.migrationId && !this.active.has(domain.migrationId)) await this.releaseStaleHold(domain);
    if (r.validateOnly) {
      return { migration: undefined, created: false, preflightReasons: await this.dryRunPreflight(r.domainName, domain, r.targetHost) };
    }

    let id = newMigrationId();
    if (r.requestId) {
      const bound = await this.records.claimRequestId(r.requestId, id);
      if (bound !== id) {
        const existing = await this.find(bound);
        if (existing) return { migration: existing, created: false, preflightReasons: [] };
        id = bound; // claimed by a coordinator that stopped before creating the record
      }
    }
    const trace = MigrationTrace.start(id, { 'ferry.domain': r.domainName, 'ferry.source': source, 'ferry.target': r.targetHost });
    const now = new Date();
    const m = Migration.fromPartial({
      id,
      requestId: r.requestId,
      domainName: r.domainName,
      sourceDomid: domain.domid,
      sourceHost: source,
      targetHost: r.targetHost,
      policy: r.policy,
      options: r.options,
      phase: MigrationPhase.MIGRATION_PHASE_PENDING,
      totals: {},
      phaseTransitions: [{ phase: MigrationPhase.MIGRATION_PHASE_PENDING, enteredAt: now }],
      traceId: trace.traceId,
      traceparent: trace.traceparent,
      epoch: 1n,
      memoryBytes: memoryPagesOf(domain) * 4096n,
      createdAt: now,
      updatedAt: now,
      lastEventSequence: 1n,
    });
    const revision = await this.records.create(m);
    const active = this.track(m, revision, trace);
    active.journal.announceCreation();
    context.with(trace.migrationContext, () =>
      this.logger.info({ migration_id: id, domain: r.domainName, source, target: r.targetHost }, 'migration accepted'),
    );
    this.admission.enqueue({ id, source, target: r.targetHost });
    this.pump();
    return { migration: m, created: true, preflightReasons: [] };
  }

  /** The domain to migrate, with `host` set: on the named source, or wherever it runs. */
  private async locateDomain(name: string, sourceHost: string): Promise<Domain> {
    if (sourceHost) {
      if (!(await this.hosts.lookup(sourceHost))) throw notFound('HOST_NOT_FOUND', `source host "${sourceHost}" is not registered in the cluster`);
      return this.queries.domainOn(sourceHost, name);
    }
    const { found, unreachableHosts } = await this.queries.findDomains(name);
    // A receiving domain of a migration in flight carries the same name: that is "migrating".
    const migrating = found.map((d) => this.domains.get(domainKey(d.host, name))).find((id) => id !== undefined);
    if (migrating) throw failedPrecondition('MIGRATION_IN_FLIGHT', `domain "${name}" is already migrating (migration ${migrating})`);
    if (found.length > 1) {
      throw invalidArgument('AMBIGUOUS_DOMAIN', `domain "${name}" exists on ${found.map((d) => d.host).join(', ')}; name the source host`);
    }
    if (found.length === 0) {
      const silent = unreachableHosts.length > 0 ? ` (hosts not answering: ${unreachableHosts.join(', ')})` : '';
      throw notFound('DOMAIN_NOT_FOUND', `no domain "${name}" on any host${silent}`);
    }
    return found[0];
  }

  /**
   * A domain still held by a migration that has ended (its rollback or clean-up could not release
   * the fence): release it now. A hold by a migration that has not ended is refused.
   */
  private async releaseStaleHold(domain: Domain): Promise<void> {
    const holder = await this.find(domain.migrationId);
    if (!holder || !isEnded(holder.phase)) {
      throw failedPrecondition('MIGRATION_IN_FLIGHT', `domain "${domain.name}" on ${domain.host} is held by migration ${domain.migrationId}`);
    }
    const c = await this.hosts.get(domain.host);
    await unaryCall(c.agent.releaseDomain, c.agent, { fence: { migrationId: holder.id, epoch: holder.epoch }, domid: domain.domid }, { deadlineMs: this.config.queryDeadlineMs });
    this.logger.info({ migration_id: holder.id, domain: domain.name, host: domain.host }, 'released a hold left by an ended migration');
  }

  /** validate_only: both hosts' pre-flight, nothing created or reserved. */
  private async dryRunPreflight(name: string, domain: Domain, targetHost: string): Promise<PreflightReason[]> {
    const deadline = { deadlineMs: this.config.queryDeadlineMs };
    const reasons: PreflightReason[] = [];
    const ask = async (hostName: string, role: MigrationRole, req: Partial<CheckMigrationRequest>) => {
      try {
        const c = await this.hosts.get(hostName);
        const res = await unaryCall(c.agent.checkMigration, c.agent, CheckMigrationRequest.fromPartial({ role, domainName: name, ...req }), deadline);
        reasons.push(...res.reasons);
        return res;
      } catch (err) {
        reasons.push({ code: PreflightCode.PREFLIGHT_CODE_HOST_UNREACHABLE, message: describeError(err), host: hostName, role });
        return undefined;
      }
    };
    const src = await ask(domain.host, MigrationRole.MIGRATION_ROLE_SOURCE, {});
    await ask(targetHost, MigrationRole.MIGRATION_ROLE_TARGET, { requiredPages: domain.nrPages, maxPages: memoryPagesOf(domain), source: src?.host });
    return reasons;
  }

  // ---- Running migrations -----------------------------------------------------------------

  private track(m: Migration, revision: number, trace: MigrationTrace): ActiveMigration {
    const logger = this.logger.child({ migration_id: m.id });
    const journal = new MigrationJournal(this.records, this.events, m, revision, logger, () => trace.migrationContext);
    const active: ActiveMigration = {
      id: m.id,
      journal,
      trace,
      cancel: new AbortController(),
      source: m.sourceHost,
      target: m.targetHost,
      domainKeys: [domainKey(m.sourceHost, m.domainName), domainKey(m.targetHost, m.domainName)],
    };
    this.active.set(m.id, active);
    for (const k of active.domainKeys) this.domains.set(k, m.id);
    return active;
  }

  private release(a: ActiveMigration): void {
    if (this.active.get(a.id) !== a) return;
    this.active.delete(a.id);
    for (const k of a.domainKeys) if (this.domains.get(k) === a.id) this.domains.delete(k);
    this.admission.remove(a.id);
    this.pump();
  }

  /** Starts every migration admission lets through. */
  private pump(): void {
    if (this.stopping.signal.aborted) return;
    for (const id of this.admission.admitReady()) {
      const a = this.active.get(id);
      if (a) this.launch(a, 'run');
      else this.admission.remove(id);
    }
  }

  private launch(a: ActiveMigration, mode: 'run' | 'resume'): void {
    const m = a.journal.current;
    const ctx: RunContext = {
      journal: a.journal,
      hosts: this.hosts,
      logger: this.logger.child({ migration_id: a.id }),
      trace: a.trace,
      fence: { migrationId: a.id, epoch: m.epoch },
      cancel: a.cancel.signal,
      stopping: this.stopping.signal,
      timing: this.config.timing,
    };
    const run = new MigrationRun(ctx);
    // The run (and every log line it writes) belongs to the migration's trace, not to the
    // request that happened to start it.
    const drive = () =>
      (mode === 'run' ? run.run() : run.resume()).then(
        (end) => {
          a.trace.end(outcomeName(end.outcome), end.failure?.reason);
          ctx.logger.info(
            { outcome: outcomeName(end.outcome), failure: end.failure?.reason, downtime_ms: Number(end.totals?.downtimeMs ?? 0n), rounds: end.totals?.rounds },
            'migration ended',
          );
        },
        (err: unknown) => this.runStopped(a, ctx.logger, err),
      );
    a.done = context
      .with(a.trace.migrationContext, drive)
      .finally(() => this.release(a));
  }

  /** A run stopped without ending its migration. */
  private runStopped(a: ActiveMigration, logger: Logger, err: unknown): void {
    if (err instanceof CoordinatorStopping) {
      logger.info({ phase: phaseName(a.journal.current.phase) }, 'left for the next coordinator');
      return;
    }
    if (err instanceof MigrationRecordConflict) {
      logger.error('the migration record changed under this coordinator; another one owns it now');
      return;
    }
    // Most likely NATS was briefly away: take the migration over again from its record.
    const tries = (this.readoptions.get(a.id) ?? 0) + 1;
    this.readoptions.set(a.id, tries);
    if (tries > MAX_READOPTIONS) {
      logger.error({ err: describeError(err), tries }, 'migration run keeps stopping; left as recorded for an operator (restart the coordinator to retry)');
      return;
    }
    logger.error({ err: describeError(err), tries }, 'migration run stopped unexpectedly; taking it over again shortly');
    const timer = setTimeout(() => {
      this.records
        .get(a.id)
        .then((v) => v && this.adopt(v))
        .catch((e: unknown) => logger.error({ err: describeError(e) }, 'could not take the migration over again'));
    }, this.config.readoptDelayMs);
    timer.unref();
  }

  // ---- Taking over ------------------------------------------------------------------------

  /** On start: continue every unfinished migration; announce what a crash left unannounced. */
  private async recover(): Promise<void> {
    const all = (await this.records.list()).sort((a, b) => (a.migration.createdAt?.getTime() ?? 0) - (b.migration.createdAt?.getTime() ?? 0));
    for (const v of all) {
      const m = v.migration;
      try {
        if (!isEnded(m.phase)) {
          await this.adopt(v);
        } else if (Date.now() - (m.updatedAt?.getTime() ?? 0) < REPUBLISH_WINDOW_MS) {
          const published = await this.events.lastSequence(m.id);
          if (published < m.lastEventSequence) {
            const j = new MigrationJournal(this.records, this.events, m, v.revision, this.logger.child({ migration_id: m.id }), () => contextOf(m.traceparent));
            await j.republishMissing(published);
          }
        }
      } catch (err) {
        this.logger.error({ migration_id: m.id, err: describeError(err) }, 'could not take over a migration');
      }
    }
    this.pump();
  }

  /** Takes an unfinished migration over: a new epoch (fencing out the previous owner), then on. */
  private async adopt(v: VersionedMigration): Promise<void> {
    const m = v.migration;
    if (isEnded(m.phase) || this.active.has(m.id) || this.stopping.signal.aborted) return;
    const epoch = m.epoch + 1n;
    const trace = MigrationTrace.resume(m.id, m.traceparent, Number(epoch));
    const a = this.track(m, v.revision, trace);
    try {
      await a.journal.republishMissing(await this.events.lastSequence(m.id));
      await a.journal.write({ change: (r) => void (r.epoch = epoch) });
    } catch (err) {
      this.release(a);
      throw err;
    }
    const plan = recoveryPlan(m.phase);
    this.logger.info({ migration_id: m.id, phase: phaseName(m.phase), epoch: Number(epoch), plan }, 'taking over a migration');
    if (plan === 'admit') {
      if (m.cancelRequested) {
        await this.endQueued(a);
        return;
      }
      this.admission.enqueue({ id: m.id, source: a.source, target: a.target });
      this.pump();
      return;
    }
    this.admission.markRunning({ id: m.id, source: a.source, target: a.target });
    this.launch(a, 'resume');
  }

  // ---- Queries and cancel -----------------------------------------------------------------

  async getMigration(id: string): Promise<Migration> {
    const m = await this.find(id);
    if (!m) throw notFound('MIGRATION_NOT_FOUND', `no migration "${id}"`);
    return m;
  }

  async listMigrations(req: ListMigrationsRequest): Promise<ListMigrationsResponse> {
    const all = (await this.records.list()).map((v) => this.active.get(v.migration.id)?.journal.current ?? v.migration);
    return pageOf(all, req);
  }

  /** A migration's events from the start (or after `afterSequence`), then new ones until the terminal event. */
  async *watchMigration(id: string, afterSequence: bigint, signal: AbortSignal): AsyncGenerator<MigrationEvent> {
    await this.getMigration(id);
    for await (const { event } of this.events.read(id, { afterSequence: Number(afterSequence), follow: true, signal })) yield event;
  }

  async cancelMigration(req: CancelMigrationRequest): Promise<Migration> {
    const id = req.migrationId;
    const a = this.active.get(id);
    if (!a) {
      const m = await this.getMigration(id);
      const effect = cancelEffect(m.phase, m.outcome, m.cancelRequested);
      if (effect === 'already') return m;
      if (effect === 'accept') throw unavailable('NOT_OWNED', `migration ${id} is not run by this coordinator`);
      throw refusal(effect, m);
    }
    const reason = req.reason || 'cancelled by request';
    try {
      await a.journal.write({
        change: (m) => {
          const effect = cancelEffect(m.phase, m.outcome, m.cancelRequested);
          if (effect !== 'accept') throw new CancelNotApplied(effect);
          m.cancelRequested = true;
          m.cancelReason = reason;
        },
      });
    } catch (err) {
      if (!(err instanceof CancelNotApplied)) throw err;
      if (err.effect === 'already') return a.journal.current;
      throw refusal(err.effect, a.journal.current);
    }
    this.logger.info({ migration_id: id, reason, phase: phaseName(a.journal.current.phase) }, 'cancel requested');
    if (this.admission.isWaiting(id)) {
      this.admission.remove(id);
      await this.endQueued(a);
    } else {
      a.cancel.abort(new MigrationCancelled(reason));
    }
    return a.journal.current;
  }

  /** Ends a cancelled migration that never left the admission queue. */
  private async endQueued(a: ActiveMigration): Promise<void> {
    const m = a.journal.current;
    const end = await a.journal.finish(MigrationOutcome.MIGRATION_OUTCOME_CANCELLED, 'cancelled before admission', (r) => {
      r.failure = failureRecord(m.phase, { kind: 'cancel', reason: m.cancelReason || 'cancelled' });
    });
    a.trace.end(outcomeName(end.outcome));
    this.release(a);
  }

  listHosts(): Promise<HostStatus[]> {
    const counts = {
      outbound: (h: string) => [...this.active.values()].filter((a) => a.source === h).length,
      inbound: (h: string) => [...this.active.values()].filter((a) => a.target === h).length,
    };
    return this.queries.listHosts(counts);
  }

  listDomains(req: ListDomainsRequest): Promise<ListDomainsResponse> {
    return this.queries.listDomains(req.host);
  }

  createDomain(req: CreateDomainRequest): Promise<CreateDomainResponse> {
    return this.queries.createDomain(req, this.config.createDomainDeadlineMs);
  }

  /** The record of a migration: the running one's journal, else the stored one. */
  private async find(id: string): Promise<Migration | undefined> {
    if (!isValidMigrationId(id)) return undefined;
    const a = this.active.get(id);
    if (a) return a.journal.current;
    return (await this.records.get(id))?.migration;
  }

  /** Stops driving migrations (their records stay for the next coordinator) and closes channels. */
  async close(graceMs = 5_000): Promise<void> {
    this.stopping.abort(new CoordinatorStopping());
    const runs = [...this.active.values()].map((a) => a.done).filter((d): d is Promise<void> => d !== undefined);
    await Promise.race([Promise.allSettled(runs), new Promise((r) => setTimeout(r, graceMs).unref())]);
    await Promise.allSettled([...this.active.values()].map((a) => a.journal.flush()));
    this.hosts.close();
  }
}

function refusal(effect: CancelEffect, m: Migration): FerryError {
  switch (effect) {
    case 'refuse-committed':
      return failedPrecondition('PAST_COMMIT_POINT', `migration ${m.id} is past its commit point (${phaseName(m.phase)}); it completes and cannot be cancelled`);
    case 'refuse-rolling-back':
      return failedPrecondition('ROLLING_BACK', `migration ${m.id} is already rolling back after a failure`);
    default:
      return failedPrecondition('MIGRATION_ENDED', `migration ${m.id} has ended (${outcomeName(m.outcome)})`);
  }
}
