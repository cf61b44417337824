// Tests wait on conditions, never on sleeps: on a busy two-core machine anything may take a while,
// so the deadline is generous and the poll short.

import { setTimeout as sleep } from 'node:timers/promises';

/** What a probe returns: the awaited value, or undefined or false while it is not there yet. */
export type Probe<T> = () => Promise<T | undefined | false> | T | undefined | false;

/**
 * Polls `probe` until it returns something other than undefined or false, and returns that. A
 * probe that throws is tried again (a service may not be listening yet); past the deadline the
 * error names what was awaited and the probe's last failure.
 */
export async function waitFor<T>(what: string, probe: Probe<T>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let failure: unknown;
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      failure = err;
    }
    if (Date.now() > deadline) {
      const why = failure === undefined ? '' : `: ${failure instanceof Error ? failure.message : String(failure)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}
