// One migration's receive session on the target host: the receiving domain, the token and epoch a
// sender must present, progress counters, and the latest refusals. It outlives its connections:
// a sender that goes away mid-round can connect again and resend (page writes are idempotent).

import { BatchRejectReason } from '@ferry/proto';

export const MAX_REJECTIONS_KEPT = 16;

export interface RejectionRecord {
  sequence: number;
  round: number;
  reason: BatchRejectReason;
  message: string;
}

export interface ReceiveStatusView {
  migrationId: string;
  domid: number;
  epoch: bigint;
  connected: boolean;
  pagesReceived: number;
  pagesWritten: number;
  zeroPages: number;
  batches: number;
  wireBytes: number;
  rejectedBatches: number;
  rejections: RejectionRecord[];
  lastRoundComplete: number | null;
  stateReceived: boolean;
  /** Data connections accepted for this session. */
  connections: number;
}

/** What a session asks of a connection: to go away (superseded, session closed, epoch replaced). */
export interface SessionConnection {
  drop(why: string): void;
}

export class ReceiveSession {
  pagesReceived = 0;
  pagesWritten = 0;
  zeroPages = 0;
  batches = 0;
  wireBytes = 0;
  rejectedBatches = 0;
  lastRoundComplete: number | null = null;
  stateReceived = false;
  connections = 0;
  private readonly rejections: RejectionRecord[] = [];
  private connection: SessionConnection | null = null;
  private closed = false;

  constructor(
    readonly migrationId: string,
    readonly domid: number,
    /** The receiving domain's max_pages: every pfn must be below it. */
    readonly maxPages: number,
    public epoch: bigint,
    public token: string,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The connection that is sending now; an older one is dropped (its sender gave up on it). */
  attach(connection: SessionConnection): void {
    this.connections++;
    const previous = this.connection;
    this.connection = connection;
    previous?.drop('a newer connection of the same session took over');
  }

  detach(connection: SessionConnection): void {
    if (this.connection === connection) this.connection = null;
  }

  /** A higher coordinator term: the new token, and no connection of the old term survives. */
  renew(epoch: bigint, token: string): void {
    this.epoch = epoch;
    this.token = token;
    const previous = this.connection;
    this.connection = null;
    previous?.drop(`the session moved to epoch ${epoch}`);
  }

  recordRejection(rejection: RejectionRecord): void {
    if (rejection.sequence !== 0) this.rejectedBatches++;
    this.rejections.push(rejection);
    if (this.rejections.length > MAX_REJECTIONS_KEPT) this.rejections.shift();
  }

  roundComplete(round: number): void {
    if (this.lastRoundComplete === null || round > this.lastRoundComplete) this.lastRoundComplete = round;
  }

  close(): void {
    this.closed = true;
    const previous = this.connection;
    this.connection = null;
    previous?.drop('the session was closed');
  }

  status(): ReceiveStatusView {
    return {
      migrationId: this.migrationId,
      domid: this.domid,
      epoch: this.epoch,
      connected: this.connection !== null,
      pagesReceived: this.pagesReceived,
      pagesWritten: this.pagesWritten,
      zeroPages: this.zeroPages,
      batches: this.batches,
      wireBytes: this.wireBytes,
      rejectedBatches: this.rejectedBatches,
      rejections: this.rejections.map((r) => ({ ...r })),
      lastRoundComplete: this.lastRoundComplete,
      stateReceived: this.stateReceived,
      connections: this.connections,
    };
  }
}
