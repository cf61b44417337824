// The guest agent's reports to xenstore: data/meminfo_free and data/meminfo_total in KiB (as
// XenServer's guest tools write them; the balloon manager reads them), and data/workload as JSON.
// Published every second and, coalesced, after balloon steps. Reports only read guest memory.

import { pagesToKiB } from '@ferry/hypervisor';

/** Paths relative to the domain's xenstore home. */
export const GUEST_PATHS = {
  memoryTarget: 'memory/target',
  controlShutdown: 'control/shutdown',
  featureSuspend: 'control/feature-suspend',
  meminfoFree: 'data/meminfo_free',
  meminfoTotal: 'data/meminfo_total',
  serviceAddress: 'data/service-address',
  workload: 'data/workload',
} as const;

export const REPORT_INTERVAL_MS = 1000;

export interface StatusSource {
  freePages(): number;
  totalPages(): number;
  workloadReport(): Record<string, unknown>;
}

export class StatusReporter {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private again = false;
  private failed = false;

  constructor(
    private readonly write: (path: string, value: string) => Promise<void>,
    private readonly source: StatusSource,
    private readonly log: (message: string) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.kick(), REPORT_INTERVAL_MS);
    this.kick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Publishes soon; several kicks while a publication is in flight make one more. */
  kick(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    void this.publish().finally(() => {
      this.inFlight = false;
      if (this.again && this.timer) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** One publication of all three keys; resolves when written. */
  async publish(): Promise<void> {
    let free: string, total: string, workload: string;
    try {
      free = String(pagesToKiB(this.source.freePages()));
      total = String(pagesToKiB(this.source.totalPages()));
      workload = JSON.stringify(this.source.workloadReport());
    } catch (err) {
      // Reading guest memory faulted: the kernel's own loops will crash the domain.
      this.log(`status report skipped: ${(err as Error).message}`);
      return;
    }
    try {
      await Promise.all([
        this.write(GUEST_PATHS.meminfoFree, free),
        this.write(GUEST_PATHS.meminfoTotal, total),
        this.write(GUEST_PATHS.workload, workload),
      ]);
      this.failed = false;
    } catch (err) {
      if (!this.failed) this.log(`status report to xenstore failed: ${(err as Error).message}`);
      this.failed = true;
    }
  }
}
