// The toolstack's side of suspending a PV guest, as libxl does it (xen.md §3.2, method 3):
//   1. write "suspend" to ~/control/shutdown;
//   2. wait for the guest to acknowledge by writing "" back (on timeout, cancel the request);
//   3. wait, woken by @releaseDomain, until the domain has shut down with reason 'suspend'.
// It needs only the public driver operations, so any HypervisorDriver can use it.

import { HypervisorError, xsPaths, type HypervisorDriver } from '../driver';

export const DEFAULT_SUSPEND_TIMEOUT_MS = 60_000;

/** The special xenstore path whose watchers fire whenever a domain shuts down or is destroyed. */
export const RELEASE_DOMAIN_WATCH = '@releaseDomain';

export async function suspendHandshake(
  driver: HypervisorDriver,
  domid: number,
  timeoutMs = DEFAULT_SUSPEND_TIMEOUT_MS,
): Promise<void> {
  const info = await driver.domainInfo(domid);
  if (info.state === 'shutdown') {
    if (info.shutdownReason === 'suspend') return; // already suspended: nothing to do
    throw new HypervisorError('EBUSY', `domain ${domid} has shut down (${info.shutdownReason}); it cannot suspend`);
  }
  if (info.state === 'paused') {
    throw new HypervisorError('EBUSY', `domain ${domid} is paused; a paused guest cannot answer a suspend request`);
  }
  const deadline = Date.now() + timeoutMs;
  const shutdownPath = xsPaths.controlShutdown(domid);

  const acknowledged = await waitUntil(
    driver,
    shutdownPath,
    deadline,
    async () => {
      const value = await driver.xenstoreRead(shutdownPath);
      return value === '' || value === null;
    },
    () => driver.xenstoreWrite(shutdownPath, 'suspend'),
  );
  if (!acknowledged) {
    // Withdraw the request so a late guest does not suspend behind our back.
    if ((await driver.xenstoreRead(shutdownPath)) === 'suspend') await driver.xenstoreWrite(shutdownPath, '');
    throw new HypervisorError(
      'ETIMEDOUT',
      `domain ${domid} did not acknowledge the suspend request on control/shutdown within ${timeoutMs} ms`,
    );
  }

  const suspended = await waitUntil(driver, RELEASE_DOMAIN_WATCH, deadline, async () => {
    const now = await driver.domainInfo(domid);
    if (now.state !== 'shutdown') return false;
    if (now.shutdownReason === 'suspend') return true;
    throw new HypervisorError('EBUSY', `domain ${domid} shut down with reason ${now.shutdownReason} instead of suspending`);
  });
  if (!suspended) {
    throw new HypervisorError(
      'ETIMEDOUT',
      `domain ${domid} acknowledged the suspend request but did not suspend within ${timeoutMs} ms`,
    );
  }
}

/**
 * Watches `path` and evaluates `check` after `start` and after every watch event, one evaluation at
 * a time, until it returns true (→ true) or the deadline passes (→ false). Errors from check propagate.
 */
async function waitUntil(
  driver: HypervisorDriver,
  path: string,
  deadline: number,
  check: () => Promise<boolean>,
  start?: () => Promise<void>,
): Promise<boolean> {
  let started = false;
  let evaluating = false;
  let again = false;
  let settle: (value: boolean) => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const outcome = new Promise<boolean>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const evaluate = () => {
    if (!started) return;
    if (evaluating) {
      again = true;
      return;
    }
    evaluating = true;
    void (async () => {
      try {
        do {
          again = false;
          if (await check()) {
            settle(true);
            return;
          }
        } while (again);
      } catch (err) {
        fail(err);
      } finally {
        evaluating = false;
      }
    })();
  };
  const watch = await driver.xenstoreWatch(path, evaluate);
  const timer = setTimeout(() => settle(false), Math.max(0, deadline - Date.now()));
  try {
    if (start) await start();
    started = true;
    evaluate();
    return await outcome;
  } finally {
    clearTimeout(timer);
    await watch.close().catch(() => {});
  }
}
