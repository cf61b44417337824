// Admission: how many migrations may run at once, in the whole cluster, out of one source host and
// into one target host. A migration over a cap is not refused: it waits in phase PENDING and is
// admitted, oldest first, as soon as all three of its slots are free. A younger migration whose
// hosts are free may overtake an older one that waits for a busy host, so one busy host does not
// hold up the rest of the cluster (KubeVirt's drain starvation). Pure and synchronous: the
// coordinator makes every decision here one at a time, so no two admissions race for a slot.

export interface AdmissionCaps {
  /** Migrations running in the cluster. */
  cluster: number;
  /** Migrations running out of one source host. */
  perSource: number;
  /** Migrations running into one target host. */
  perTarget: number;
}

export const DEFAULT_CAPS: AdmissionCaps = { cluster: 4, perSource: 1, perTarget: 1 };

export interface AdmissionTicket {
  id: string;
  source: string;
  target: string;
}

export class Admission {
  private readonly running = new Map<string, AdmissionTicket>();
  private readonly waiting: AdmissionTicket[] = [];

  constructor(readonly caps: AdmissionCaps = DEFAULT_CAPS) {
    for (const [k, v] of Object.entries(caps)) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`admission cap ${k} must be a positive integer, got ${v}`);
    }
  }

  /** Queues a migration; call admitReady() to see whether it can start. */
  enqueue(ticket: AdmissionTicket): void {
    if (this.running.has(ticket.id) || this.waiting.some((t) => t.id === ticket.id)) return;
    this.waiting.push(ticket);
  }

  /** Counts a migration as running without queueing it (one taken over after a restart). */
  markRunning(ticket: AdmissionTicket): void {
    this.remove(ticket.id);
    this.running.set(ticket.id, ticket);
  }

  /** Takes a migration out of the queue or frees its slots. True when it was known. */
  remove(id: string): boolean {
    const i = this.waiting.findIndex((t) => t.id === id);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      return true;
    }
    return this.running.delete(id);
  }

  isWaiting(id: string): boolean {
    return this.waiting.some((t) => t.id === id);
  }

  /** Admits, oldest first, every waiting migration whose slots are free; returns their ids. */
  admitReady(): string[] {
    const admitted: string[] = [];
    for (let i = 0; i < this.waiting.length; ) {
      const t = this.waiting[i];
      if (this.blockedBy(t) === undefined) {
        this.waiting.splice(i, 1);
        this.running.set(t.id, t);
        admitted.push(t.id);
      } else {
        i++;
      }
    }
    return admitted;
  }

  /** Why a waiting migration cannot start yet, for people; undefined when it could. */
  blockedBy(t: Pick<AdmissionTicket, 'source' | 'target'>): string | undefined {
    const { cluster, perSource, perTarget } = this.caps;
    if (this.running.size >= cluster) return `${this.running.size} migrations running in the cluster (cap ${cluster})`;
    const out = this.outbound(t.source);
    if (out >= perSource) return `source host ${t.source} has ${out} outbound migration(s) running (cap ${perSource})`;
    const inb = this.inbound(t.target);
    if (inb >= perTarget) return `target host ${t.target} has ${inb} inbound migration(s) running (cap ${perTarget})`;
    return undefined;
  }

  /** Running migrations with `host` as the source. */
  outbound(host: string): number {
    let n = 0;
    for (const t of this.running.values()) if (t.source === host) n++;
    return n;
  }

  /** Running migrations with `host` as the target. */
  inbound(host: string): number {
    let n = 0;
    for (const t of this.running.values()) if (t.target === host) n++;
    return n;
  }

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }
}
