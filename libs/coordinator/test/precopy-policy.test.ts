import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPrecopy, xen417Policy, type PrecopyExecutor, type RoundPlan, type RoundResult } from '@ferry/policy';
import { MigrationOptions, TimeoutAction } from '@ferry/proto';
import { completionTimeoutMs, decidingPolicy, type Decision } from '../src';

/** A guest that dirties `dirty[r]` pages before round r's CLEAN; every page takes 1 ms to send. */
function scriptedExecutor(dirty: number[]): PrecopyExecutor & { suspended: boolean } {
  return {
    suspended: false,
    async prepareRound(round: number): Promise<RoundPlan> {
      const n = round === 0 ? 1000 : (dirty[round] ?? 0);
      return { dirtyCount: n, faultCount: 0, pagesToSend: n, held: 0, released: 0 };
    },
    async sendRound(_round: number): Promise<RoundResult> {
      return { pagesSent: 10, pagesSkipped: 0, zeroPages: 0, bytes: 40960, elapsedMs: 10 };
    },
    async suspend() {
      this.suspended = true;
    },
  };
}

test('every round gets a decision with a reason people can read', async () => {
  const decisions: Decision[] = [];
  const policy = decidingPolicy(xen417Policy(), { deadline: Number.POSITIVE_INFINITY, onTimeout: TimeoutAction.TIMEOUT_ACTION_ABORT, downtimeTargetMs: 0 }, (d) => decisions.push(d));
  const ex = scriptedExecutor([0, 400, 200, 30]);
  const outcome = await runPrecopy(ex, policy, { domainPages: 1000, p2mSize: 1024 });
  assert.ok(ex.suspended);
  assert.deepEqual(
    decisions.map((d) => [d.decision.action, d.reason]),
    [
      ['continue', 'dirty 400, 400 to send'],
      ['continue', 'dirty 200, 200 to send'],
      ['stop', 'dirty pages 30 < 50'],
    ],
  );
  assert.equal(outcome.stopReason, 'dirty-below-threshold');
});

test('past the completion timeout: abort, or force stop-and-copy', async () => {
  let now = 0;
  const run = async (onTimeout: TimeoutAction) => {
    now = 0;
    const decisions: Decision[] = [];
    const ex = scriptedExecutor(Array(30).fill(500));
    const origSend = ex.sendRound.bind(ex);
    ex.sendRound = async (r, f) => {
      now += 60_000; // every round takes a minute
      return origSend(r, f);
    };
    const policy = decidingPolicy(xen417Policy({ maxIterations: 100 }), { deadline: 150_000, onTimeout, downtimeTargetMs: 0, now: () => now }, (d) => decisions.push(d));
    const result = await runPrecopy(ex, policy, { domainPages: 1000, p2mSize: 1024 }).then(
      (o) => ({ ok: true as const, o }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    return { result, decisions, suspended: ex.suspended };
  };
  const aborted = await run(TimeoutAction.TIMEOUT_ACTION_ABORT);
  assert.equal(aborted.result.ok, false);
  assert.equal(aborted.suspended, false, 'an aborted pre-copy never suspends the guest');
  assert.ok(aborted.decisions.at(-1)?.timedOut);
  assert.match(aborted.decisions.at(-1)?.reason ?? '', /completion timeout after 3 rounds/);

  const forced = await run(TimeoutAction.TIMEOUT_ACTION_FORCE_STOP_AND_COPY);
  assert.equal(forced.result.ok, true);
  assert.equal(forced.suspended, true);
  assert.match(forced.decisions.at(-1)?.reason ?? '', /forcing stop-and-copy/);
});

test('the completion timeout scales with the domain memory', () => {
  const o = MigrationOptions.fromPartial({ completionTimeoutPerGibS: 800n });
  assert.equal(completionTimeoutMs(o, 1024n ** 3n), 800_000);
  assert.equal(completionTimeoutMs(o, 256n * 1024n ** 2n), 200_000);
});
