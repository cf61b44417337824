// FerryClient: Ferry's public MigrationService as promises, and a migration's events as an
// async iterator. Every failed call rejects with a FerryClientError (gRPC status + Ferry reason).
//
//   const ferry = new FerryClient('127.0.0.1:50051');
//   const { migration } = await ferry.startMigration({ domainName: 'web-1', targetHost: 'host-2', policy: 'layered' });
//   for await (const event of ferry.watch(migration!.id)) console.log(event.event?.$case);
//   ferry.close();

import { credentials, Metadata, status, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  CreateDomainRequest,
  ListMigrationsRequest,
  MigrationClient,
  StartMigrationRequest,
  type Domain,
  type HostStatus,
  type LayeredParameters,
  type ListDomainsResponse,
  type ListMigrationsResponse,
  type Migration,
  type MigrationEvent,
  type MigrationOptions,
  type MigrationPolicy,
  type StartMigrationResponse,
  type WatchMigrationResponse,
  type WorkloadSpec,
} from '@ferry/proto';
import { FerryClientError, toClientError } from './errors';
import { policyFromName, type PolicyName } from './summary';

type Bigintish = bigint | number | string;
type Loosen<T> = { [K in keyof T]?: T[K] extends bigint ? Bigintish : T[K] };

/** StartMigration's request, with the options partial and the policy as a name or an enum value. */
export interface StartMigrationInput {
  domainName: string;
  targetHost: string;
  /** Empty or absent: the coordinator finds the host the domain runs on. */
  sourceHost?: string;
  policy?: PolicyName | MigrationPolicy;
  options?: Omit<Loosen<MigrationOptions>, 'layered'> & { layered?: Partial<LayeredParameters> };
  /** Idempotency key: a retry with the same key returns the same migration. */
  requestId?: string;
  validateOnly?: boolean;
}

export type ListMigrationsInput = Partial<ListMigrationsRequest>;

export interface DomainSpecInput {
  name: string;
  memoryBytes: Bigintish;
  vcpus?: number;
  workload?: Partial<WorkloadSpec>;
}

export interface FerryClientOptions {
  /** Deadline of each unary call; default 30 s. */
  deadlineMs?: number;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export class FerryClient {
  private readonly client: MigrationClient;
  private readonly deadlineMs: number;

  constructor(
    readonly address: string,
    opts: FerryClientOptions = {},
  ) {
    this.client = new MigrationClient(address, credentials.createInsecure());
    this.deadlineMs = opts.deadlineMs ?? 30_000;
  }

  private call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, deadlineMs = this.deadlineMs): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      method.call(this.client, request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(toClientError(err)) : resolve(res)));
    });
  }

  startMigration(input: StartMigrationInput): Promise<StartMigrationResponse> {
    const policy = typeof input.policy === 'string' ? policyFromName(input.policy) : input.policy;
    const request = StartMigrationRequest.fromPartial({ ...input, policy, options: input.options } as Parameters<typeof StartMigrationRequest.fromPartial>[0]);
    return this.call(this.client.startMigration, request);
  }

  async getMigration(migrationId: string): Promise<Migration> {
    const res = await this.call(this.client.getMigration, { migrationId });
    if (!res.migration) throw new FerryClientError(status.INTERNAL, 'EMPTY_RESPONSE', 'GetMigration returned no migration');
    return res.migration;
  }

  listMigrations(input: ListMigrationsInput = {}): Promise<ListMigrationsResponse> {
    return this.call(this.client.listMigrations, ListMigrationsRequest.fromPartial(input));
  }

  async cancelMigration(migrationId: string, reason = ''): Promise<Migration> {
    const res = await this.call(this.client.cancelMigration, { migrationId, reason });
    if (!res.migration) throw new FerryClientError(status.INTERNAL, 'EMPTY_RESPONSE', 'CancelMigration returned no migration');
    return res.migration;
  }

  async listHosts(): Promise<HostStatus[]> {
    return (await this.call(this.client.listHosts, {})).hosts;
  }

  listDomains(host = ''): Promise<ListDomainsResponse> {
    return this.call(this.client.listDomains, { host });
  }

  /** Creates and starts a domain on `host`; a guest boots, so the deadline is generous. */
  async createDomain(host: string, spec: DomainSpecInput, deadlineMs = 180_000): Promise<Domain> {
    const request = CreateDomainRequest.fromPartial({ host, spec: spec as Parameters<typeof CreateDomainRequest.fromPartial>[0]['spec'] });
    const res = await this.call(this.client.createDomain, request, deadlineMs);
    if (!res.domain) throw new FerryClientError(status.INTERNAL, 'EMPTY_RESPONSE', 'CreateDomain returned no domain');
    return res.domain;
  }

  /**
   * A migration's events: every one so far (or those after `afterSequence`), then each new one,
   * ending after the terminal event. Breaking out of the loop or aborting `signal` ends the call.
   */
  async *watch(migrationId: string, opts: { afterSequence?: number; signal?: AbortSignal } = {}): AsyncGenerator<MigrationEvent> {
    const call = this.client.watchMigration({ migrationId, afterSequence: BigInt(opts.afterSequence ?? 0) });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const res of call as AsyncIterable<WatchMigrationResponse>) {
        if (res.event) yield res.event;
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw toClientError(err);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /** Waits until the migration has ended and returns its final record. */
  async waitForEnd(migrationId: string, opts: { signal?: AbortSignal } = {}): Promise<Migration> {
    for await (const e of this.watch(migrationId, opts)) {
      const kind = e.event?.$case;
      if ((kind === 'migrationCompleted' || kind === 'migrationFailed' || kind === 'migrationCancelled') && e.migration) return e.migration;
    }
    return this.getMigration(migrationId);
  }

  close(): void {
    this.client.close();
  }
}
