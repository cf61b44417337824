// The page streamer of one host, both roles:
// - target: receive sessions (one per migration, bound to a paused receiving domain, with a token
//   and an epoch) served by one data listener;
// - source: SendRound / SendState calls, fenced per migration (a lower epoch is ABORTED), one at a
//   time per migration (a newer call supersedes an older one, which fails with ABORTED).

import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { HypervisorError, type HypervisorDriver } from '@ferry/hypervisor';
import { failedPrecondition, invalidArgument, notFound, type Logger } from '@ferry/runtime';
import type { StreamLayers } from '@ferry/xen-stream';
import { DataListener } from './data-listener';
import { aborted } from './errors';
import { memoryDigest, type MemoryDigestResult } from './memory-digest';
import { exportDomain, type ExportResult } from './domain-export';
import { DEFAULT_RECEIVER_OPTIONS, ReceiveConnection, type ReceivedTotals, type ReceiverOptions } from './receive-connection';
import { ReceiveSession, type ReceiveStatusView } from './receive-session';
import { DEFAULT_SENDER_TIMEOUTS, sendRound, type SendRoundRequest, type SendRoundStats, type SenderTimeouts } from './round-sender';
import type { SendSetSource } from './send-set-source';
import { sendState, type SendStateRequest, type SendStateStats } from './state-sender';
import { DataLink } from './data-link';
import type { StreamReader } from './wire/stream-reader';

export interface Fence {
  migrationId: string;
  epoch: bigint;
}

export interface PageStreamerOptions {
  driver: HypervisorDriver;
  sendSets: SendSetSource;
  /** Where the data port listens ("host:port"; port 0 for any). */
  dataListen: string;
  /** This host's name (hellos, logs, and the advertised data endpoint of a wildcard listener). */
  hostName: string;
  logger: Logger;
  sender?: Partial<SenderTimeouts>;
  receiver?: Partial<ReceiverOptions>;
}

export interface OpenedSession {
  dataEndpoint: string;
  resumed: boolean;
  status: ReceiveStatusView;
}

/** Tokens carry at least 16 bytes of randomness, hex- or base64-encoded. */
const TOKEN_PATTERN = /^[A-Za-z0-9+/=_-]{22,512}$/;

interface OutgoingMigration {
  epoch: bigint;
  /** The SendRound / SendState in progress, if any. */
  active: AbortController | null;
  /** The data connection to the receiver, kept from round to round. */
  link: DataLink;
}

type SendParams<T> = Omit<T, 'migrationId' | 'epoch' | 'signal'> & { fence: Fence };

export class PageStreamer {
  private readonly sessions = new Map<string, ReceiveSession>();
  private readonly outgoing = new Map<string, OutgoingMigration>();
  private readonly connections = new Set<ReceiveConnection>();
  private readonly senderTimeouts: SenderTimeouts;
  private readonly receiverOptions: ReceiverOptions;
  /** What this streamer received since it started, over every session (for metrics). */
  readonly received: ReceivedTotals = { pages: 0, wireBytes: 0, rounds: 0 };

  private constructor(
    private readonly opts: PageStreamerOptions,
    private readonly listener: DataListener,
  ) {
    this.senderTimeouts = { ...DEFAULT_SENDER_TIMEOUTS, ...opts.sender };
    this.receiverOptions = { ...DEFAULT_RECEIVER_OPTIONS, ...opts.receiver };
  }

  static async start(opts: PageStreamerOptions): Promise<PageStreamer> {
    let streamer: PageStreamer | null = null;
    const listener = await DataListener.listen(
      opts.dataListen,
      (socket, reader) => {
        if (streamer) streamer.accept(socket, reader);
        else socket.destroy(); // not serving yet
      },
      opts.hostName,
    );
    streamer = new PageStreamer(opts, listener);
    return streamer;
  }

  get dataEndpoint(): string {
    return this.listener.endpoint;
  }

  // ---- target side -------------------------------------------------------------------------

  async openReceiveSession(fence: Fence, domid: number, token: string): Promise<OpenedSession> {
    checkFence(fence);
    checkDomid(domid);
    if (!TOKEN_PATTERN.test(token)) {
      throw invalidArgument('BAD_TOKEN', 'token must be at least 16 bytes of randomness, hex- or base64-encoded (22 or more characters)');
    }
    const existing = this.sessions.get(fence.migrationId);
    if (existing) return this.reopen(existing, fence, domid, token);
    const owner = this.receivingInto(domid);
    if (owner) throw failedPrecondition('DOMAIN_RECEIVING', `domain ${domid} is receiving migration ${owner.migrationId} already`);
    const info = await this.opts.driver.domainInfo(domid).catch((err: unknown) => {
      throw isNoSuchDomain(err) ? notFound('DOMAIN_NOT_FOUND', `domain ${domid} does not exist on this host`) : err;
    });
    if (info.state !== 'paused') {
      throw failedPrecondition('DOMAIN_NOT_PAUSED', `domain ${domid} is ${info.state}; pages are received into a paused domain only`);
    }
    // Someone may have opened the same session while we asked the hypervisor.
    const raced = this.sessions.get(fence.migrationId);
    if (raced) return this.reopen(raced, fence, domid, token);
    const rival = this.receivingInto(domid);
    if (rival) throw failedPrecondition('DOMAIN_RECEIVING', `domain ${domid} is receiving migration ${rival.migrationId} already`);
    const session = new ReceiveSession(fence.migrationId, domid, info.maxPages, fence.epoch, token);
    this.sessions.set(fence.migrationId, session);
    this.opts.logger.info({ migration_id: fence.migrationId, domid, epoch: String(fence.epoch), maxPages: info.maxPages }, 'receive session opened');
    return { dataEndpoint: this.dataEndpoint, resumed: false, status: session.status() };
  }

  getReceiveStatus(migrationId: string): ReceiveStatusView {
    if (!migrationId) throw invalidArgument('MIGRATION_ID_REQUIRED', 'migration_id is required');
    const session = this.sessions.get(migrationId);
    if (!session) throw notFound('UNKNOWN_SESSION', `no receive session for migration ${migrationId} on this host`);
    return session.status();
  }

  /** Ends the migration's session on this host, on either side. Idempotent. */
  closeSession(fence: Fence): { closed: boolean; status?: ReceiveStatusView } {
    checkFence(fence);
    let closed = false;
    let status: ReceiveStatusView | undefined;
    const session = this.sessions.get(fence.migrationId);
    if (session) {
      if (fence.epoch < session.epoch) throw staleEpoch(fence, session.epoch);
      session.close();
      this.sessions.delete(fence.migrationId);
      status = session.status();
      closed = true;
    }
    const out = this.outgoing.get(fence.migrationId);
    if (out) {
      if (fence.epoch < out.epoch) throw staleEpoch(fence, out.epoch);
      out.active?.abort(aborted('SESSION_CLOSED', `the session of migration ${fence.migrationId} was closed`));
      out.link.close();
      this.outgoing.delete(fence.migrationId);
      closed = true;
    }
    if (closed) this.opts.logger.info({ migration_id: fence.migrationId }, 'session closed');
    return { closed, status };
  }

  // ---- source side -------------------------------------------------------------------------

  /** `cancelled` (the caller went away, e.g. its deadline passed) stops the round. */
  async sendRound(params: SendParams<SendRoundRequest>, cancelled?: AbortSignal): Promise<SendRoundStats> {
    checkDomid(params.domid);
    if (!Number.isInteger(params.round) || params.round < 0) throw invalidArgument('BAD_ROUND', `round must be a non-negative integer, got ${params.round}`);
    if (!(params.bandwidthBps >= 0)) throw invalidArgument('BAD_BANDWIDTH', `bandwidth_bps must be >= 0, got ${params.bandwidthBps}`);
    return this.outgoingCall(params.fence, params, cancelled, (target, link) => sendRound(this.senderDeps(), { ...params, ...target }, link));
  }

  async sendState(params: SendParams<SendStateRequest>, cancelled?: AbortSignal): Promise<SendStateStats> {
    checkDomid(params.domid);
    return this.outgoingCall(params.fence, params, cancelled, (target, link) => sendState(this.senderDeps(), { ...params, ...target }, link));
  }

  // ---- either side -------------------------------------------------------------------------

  async memoryDigest(domid: number): Promise<MemoryDigestResult> {
    checkDomid(domid);
    return memoryDigest(this.opts.driver, domid);
  }

  /** The paused domain as a Xen migration stream into `out` (see domain-export.ts). */
  async exportDomain(domid: number, layers: StreamLayers, out: Writable, cancelled?: AbortSignal): Promise<ExportResult> {
    checkDomid(domid);
    const receiving = this.receivingInto(domid);
    if (receiving) throw failedPrecondition('DOMAIN_RECEIVING', `domain ${domid} is receiving migration ${receiving.migrationId}; it has no complete memory to export`);
    return exportDomain({ driver: this.opts.driver, hostName: this.opts.hostName, logger: this.opts.logger }, { domid, layers, out, signal: cancelled });
  }

  /** Shutdown: stop listening, end every connection and call in progress. */
  async close(): Promise<void> {
    for (const out of this.outgoing.values()) {
      out.active?.abort(aborted('SHUTTING_DOWN', 'the page streamer is shutting down'));
      out.link.close();
    }
    for (const session of this.sessions.values()) session.close();
    for (const connection of this.connections) connection.drop('the page streamer is shutting down');
    await this.listener.close();
    this.opts.sendSets.close();
  }

  private accept(socket: Socket, reader: StreamReader): void {
    const connection = new ReceiveConnection(socket, reader, { find: (id) => this.sessions.get(id) }, this.opts.driver, this.opts.logger, this.receiverOptions, this.received);
    this.connections.add(connection);
    void connection.run().finally(() => this.connections.delete(connection));
  }

  private reopen(session: ReceiveSession, fence: Fence, domid: number, token: string): OpenedSession {
    if (session.domid !== domid) {
      throw failedPrecondition('SESSION_DOMAIN_MISMATCH', `migration ${fence.migrationId} receives into domain ${session.domid}, not ${domid}`);
    }
    if (fence.epoch < session.epoch) throw staleEpoch(fence, session.epoch);
    if (fence.epoch > session.epoch) {
      session.renew(fence.epoch, token);
      this.opts.logger.info({ migration_id: fence.migrationId, epoch: String(fence.epoch) }, 'receive session renewed for a newer epoch');
    } else if (session.token !== token) {
      throw failedPrecondition('SESSION_TOKEN_MISMATCH', `migration ${fence.migrationId} has a receive session with another token for epoch ${fence.epoch}`);
    }
    return { dataEndpoint: this.dataEndpoint, resumed: true, status: session.status() };
  }

  private receivingInto(domid: number): ReceiveSession | undefined {
    for (const s of this.sessions.values()) if (s.domid === domid) return s;
    return undefined;
  }

  /** Fence check, supersede the call in progress, run `op` with this call's abort signal. */
  private async outgoingCall<T>(
    fence: Fence,
    params: { peerEndpoint: string; token: string },
    cancelled: AbortSignal | undefined,
    op: (target: { migrationId: string; epoch: bigint; signal: AbortSignal }, link: DataLink) => Promise<T>,
  ): Promise<T> {
    checkFence(fence);
    if (!params.peerEndpoint) throw invalidArgument('PEER_ENDPOINT_REQUIRED', 'peer_endpoint is required');
    if (!params.token) throw invalidArgument('TOKEN_REQUIRED', 'token is required');
    let out = this.outgoing.get(fence.migrationId);
    if (out && fence.epoch < out.epoch) throw staleEpoch(fence, out.epoch);
    if (!out) {
      out = { epoch: fence.epoch, active: null, link: new DataLink() };
      this.outgoing.set(fence.migrationId, out);
    }
    out.epoch = fence.epoch;
    out.active?.abort(aborted('SUPERSEDED', `a newer call for migration ${fence.migrationId} superseded this one`));
    const controller = new AbortController();
    out.active = controller;
    const onCancel = () => controller.abort(aborted('CANCELLED', `the caller cancelled the call for migration ${fence.migrationId}`));
    if (cancelled?.aborted) onCancel();
    cancelled?.addEventListener('abort', onCancel, { once: true });
    try {
      return await op({ migrationId: fence.migrationId, epoch: fence.epoch, signal: controller.signal }, out.link);
    } finally {
      cancelled?.removeEventListener('abort', onCancel);
      if (out.active === controller) out.active = null;
    }
  }

  private senderDeps() {
    return { driver: this.opts.driver, sendSets: this.opts.sendSets, hostName: this.opts.hostName, logger: this.opts.logger, timeouts: this.senderTimeouts };
  }
}

function checkFence(fence: Fence): void {
  if (!fence.migrationId) throw invalidArgument('FENCE_REQUIRED', 'fence.migration_id is required');
  if (fence.epoch <= 0n) throw invalidArgument('FENCE_REQUIRED', 'fence.epoch must be positive');
}

function checkDomid(domid: number): void {
  if (!Number.isInteger(domid) || domid <= 0) throw invalidArgument('BAD_DOMID', `domid must be a guest domain (> 0), got ${domid}`);
}

function staleEpoch(fence: Fence, current: bigint) {
  return aborted('STALE_EPOCH', `migration ${fence.migrationId}: epoch ${fence.epoch} is older than the accepted epoch ${current}`);
}

function isNoSuchDomain(err: unknown): boolean {
  return err instanceof HypervisorError && err.code === 'ESRCH';
}
