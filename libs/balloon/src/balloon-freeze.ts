// A frozen balloon: while a migration holds it, memory/target stays where the migration put it.
// A watch on memory/target puts back any other value written by anyone else (a guest agent, an
// operator's xl mem-set), because pages freed or populated during pre-copy dirty memory and hurt
// convergence (XAPI froze the balloon the same way: dynamic-min = dynamic-max during a move).
// The freeze remembers the target it found, which Restore sets back by default.

import { xsPaths, type HypervisorDriver, type XenstoreWatch } from '@ferry/hypervisor';
import { notFound, type Logger } from '@ferry/runtime';
import { parseKiB } from './guest-memory';

export class BalloonFreeze {
  /** memory/target (KiB) when the freeze started; null until armed. */
  originalTargetKiB: number | null = null;
  /** Times someone else moved the target and it was put back. */
  putBacks = 0;
  /** Settles once the original target is recorded and the watch is in place. */
  readonly armed: Promise<void>;
  private heldKiB: number | null = null;
  private watch: XenstoreWatch | null = null;
  private closed = false;
  private checking = false;
  private checkAgain = false;
  private readonly path: string;

  constructor(
    private readonly driver: HypervisorDriver,
    readonly domid: number,
    readonly migrationId: string,
    private readonly logger: Logger,
    /** Called when the domain turns out to be gone; the freeze has closed itself. */
    private readonly onGone: () => void,
  ) {
    this.path = xsPaths.memoryTarget(domid);
    this.armed = this.arm();
    this.armed.catch(() => {}); // whoever awaits it sees the error; an unobserved one is not a crash
  }

  get targetKiB(): number | null {
    return this.heldKiB;
  }

  /** Moves the held target to `kib` and writes it; the guest's balloon driver follows it. */
  async hold(kib: number): Promise<void> {
    await this.armed;
    this.heldKiB = kib;
    await this.driver.xenstoreWrite(this.path, String(kib));
  }

  /** Ends the freeze; with `finalKiB` the target is set to it first (a restore), else left as is. */
  async release(finalKiB?: number): Promise<void> {
    await this.armed.catch(() => {});
    this.closed = true;
    const watch = this.watch;
    this.watch = null;
    await watch?.close().catch(() => {});
    if (finalKiB !== undefined) {
      this.heldKiB = finalKiB;
      await this.driver.xenstoreWrite(this.path, String(finalKiB));
    }
  }

  private async arm(): Promise<void> {
    const current = parseKiB(await this.driver.xenstoreRead(this.path));
    const fallback = current ?? parseKiB(await this.driver.xenstoreRead(xsPaths.memoryStaticMax(this.domid)));
    if (fallback === null) throw notFound('DOMAIN_NOT_FOUND', `domain ${this.domid} has no memory/target or static-max in xenstore`);
    this.originalTargetKiB = fallback;
    this.heldKiB = fallback;
    // The watch fires once at registration (as Xen's does): that first check finds the value held.
    const watch = await this.driver.xenstoreWatch(this.path, () => this.check());
    if (this.closed) await watch.close().catch(() => {});
    else this.watch = watch;
  }

  /** One evaluation at a time; events during an evaluation cause one more. */
  private check(): void {
    if (this.closed) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    void (async () => {
      try {
        do {
          this.checkAgain = false;
          await this.putBack();
        } while (this.checkAgain && !this.closed);
      } catch (err) {
        this.logger.warn({ domid: this.domid, err: err instanceof Error ? err.message : String(err) }, 'balloon freeze check failed');
      } finally {
        this.checking = false;
      }
    })();
  }

  private async putBack(): Promise<void> {
    const raw = await this.driver.xenstoreRead(this.path);
    if (this.closed || this.heldKiB === null) return;
    if (raw === null) {
      // The key went away: the domain is being destroyed (its xenstore home is removed).
      const gone = await this.driver.domainInfo(this.domid).then(
        () => false,
        () => true,
      );
      if (gone) {
        await this.release();
        this.onGone();
        return;
      }
    }
    const held = this.heldKiB;
    if (parseKiB(raw) === held) return;
    this.putBacks++;
    this.logger.warn(
      { domid: this.domid, migrationId: this.migrationId, written: raw, heldKiB: held },
      'memory/target changed while the balloon is frozen: putting it back',
    );
    await this.driver.xenstoreWrite(this.path, String(held));
  }
}
