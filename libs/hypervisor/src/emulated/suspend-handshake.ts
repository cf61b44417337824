// The toolstack's side of suspending a PV guest, as libxl does it (xen.md §3.2, method 3):
//   1. write "suspend" to ~/control/shutdown;
//   2. wait for the guest to acknowledge by writing "" back (on timeout, cancel the request);
//   3. wait, woken by @releaseDomain, until the domain has shut down with reason 'suspend'.
// It needs only the public driver operations, so any HypervisorDriver can use it.
//
// The whole handshake is downtime as a migration sees it, so it makes as few round trips as it
// can: both watches are set (and the domain's state read) at the same time before the request is
// written, the wait for the suspend starts the moment the acknowledgement is seen, and the watches
// are removed without waiting for the replies.

import { HypervisorError, xsPaths, type HypervisorDriver, type XenstoreWatch } from '../driver';

export const DEFAULT_SUSPEND_TIMEOUT_MS = 60_000;

/** The special xenstore path whose watchers fire whenever a domain shuts down or is destroyed. */
export const RELEASE_DOMAIN_WATCH = '@releaseDomain';

export async function suspendHandshake(
  driver: HypervisorDriver,
  domid: number,
  timeoutMs = DEFAULT_SUSPEND_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const shutdownPath = xsPaths.controlShutdown(domid);
  const [infoRead, ackWatch, releaseWatch] = await Promise.allSettled([
    driver.domainInfo(domid),
    WatchedCondition.open(driver, shutdownPath, async () => {
      const value = await driver.xenstoreRead(shutdownPath);
      return value === '' || value === null;
    }),
    WatchedCondition.open(driver, RELEASE_DOMAIN_WATCH, async () => {
      const now = await driver.domainInfo(domid);
      if (now.state !== 'shutdown') return false;
      if (now.shutdownReason === 'suspend') return true;
      throw new HypervisorError('EBUSY', `domain ${domid} shut down with reason ${now.shutdownReason} instead of suspending`);
    }),
  ]);
  const acknowledged = ackWatch.status === 'fulfilled' ? ackWatch.value : undefined;
  const suspended = releaseWatch.status === 'fulfilled' ? releaseWatch.value : undefined;
  try {
    if (infoRead.status === 'rejected') throw infoRead.reason;
    if (ackWatch.status === 'rejected') throw ackWatch.reason;
    if (releaseWatch.status === 'rejected') throw releaseWatch.reason;
    const info = infoRead.value;
    if (info.state === 'shutdown') {
      if (info.shutdownReason === 'suspend') return; // already suspended: nothing to do
      throw new HypervisorError('EBUSY', `domain ${domid} has shut down (${info.shutdownReason}); it cannot suspend`);
    }
    if (info.state === 'paused') {
      throw new HypervisorError('EBUSY', `domain ${domid} is paused; a paused guest cannot answer a suspend request`);
    }

    await driver.xenstoreWrite(shutdownPath, 'suspend');
    if (!(await acknowledged!.until(deadline))) {
      // Withdraw the request so a late guest does not suspend behind our back.
      if ((await driver.xenstoreRead(shutdownPath)) === 'suspend') await driver.xenstoreWrite(shutdownPath, '');
      throw new HypervisorError(
        'ETIMEDOUT',
        `domain ${domid} did not acknowledge the suspend request on control/shutdown within ${timeoutMs} ms`,
      );
    }
    if (!(await suspended!.until(deadline))) {
      throw new HypervisorError(
        'ETIMEDOUT',
        `domain ${domid} acknowledged the suspend request but did not suspend within ${timeoutMs} ms`,
      );
    }
  } finally {
    acknowledged?.close();
    suspended?.close();
  }
}

/**
 * A condition on xenstore or the domain's state, re-evaluated on every event of a watch: `until`
 * evaluates it at once and after each later event, one evaluation at a time, until it holds (→ true)
 * or the deadline passes (→ false). Events before `until` are not evaluated (`until` starts with an
 * evaluation anyway). Errors from the check reject `until`.
 */
class WatchedCondition {
  private watch: XenstoreWatch | undefined;
  private waiting: { settle: (holds: boolean) => void; fail: (err: unknown) => void } | undefined;
  private evaluating = false;
  private again = false;

  private constructor(private readonly check: () => Promise<boolean>) {}

  static async open(driver: HypervisorDriver, path: string, check: () => Promise<boolean>): Promise<WatchedCondition> {
    const condition = new WatchedCondition(check);
    condition.watch = await driver.xenstoreWatch(path, () => condition.evaluate());
    return condition;
  }

  until(deadline: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => settle(false), Math.max(0, deadline - Date.now()));
      const end = () => {
        clearTimeout(timer);
        this.waiting = undefined;
      };
      const settle = (holds: boolean) => {
        end();
        resolve(holds);
      };
      this.waiting = {
        settle,
        fail: (err) => {
          end();
          reject(err);
        },
      };
      this.evaluate();
    });
  }

  /** Removes the watch; nothing waits for the reply (a late event finds nobody waiting). */
  close(): void {
    void this.watch?.close().catch(() => {});
  }

  private evaluate(): void {
    if (!this.waiting) return;
    if (this.evaluating) {
      this.again = true;
      return;
    }
    this.evaluating = true;
    void (async () => {
      try {
        do {
          this.again = false;
          if (await this.check()) {
            this.waiting?.settle(true);
            return;
          }
        } while (this.again && this.waiting);
      } catch (err) {
        this.waiting?.fail(err);
      } finally {
        this.evaluating = false;
      }
    })();
  }
}
