// The judging of a migration from the guest's console lines (no QEMU needed).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeMigration, parseGuestConsole } from './guest-console';

describe('guest console', () => {
  it('parses checks and failures', () => {
    const c = parseGuestConsole(
      ['FERRY-CHECK 1 bad=0 slots=0 last=0:0 gap=0:0-0:0', 'FERRY-GUEST-READY files=16', 'FERRY-BAD m3', 'FERRY-CHECK 2 bad=1 slots=256 last=900:61.5 gap=10:2.5-11:3.75'].join('\n'),
    );
    assert.equal(c.ready, true);
    assert.deepEqual(c.bad, ['m3']);
    assert.equal(c.checks.length, 2);
    assert.deepEqual(c.checks[1], { k: 2, bad: 1, slots: 256, last: { n: 900, seconds: 61.5 }, gapFrom: { n: 10, seconds: 2.5 }, gapTo: { n: 11, seconds: 3.75 } });
  });

  it('measures downtime on the guest clock, minus the skew between the hosts', () => {
    const source = parseGuestConsole('FERRY-CHECK 2 bad=0 slots=256 last=400:30.25 gap=100:12-101:12.3');
    // The move happened between ticks 1000 and 1001: 2.5 s by the guest's clock, the target's clock 0.4 s ahead.
    const target = parseGuestConsole('FERRY-CHECK 3 bad=0 slots=256 last=1200:101.5 gap=1000:80-1001:82.5');
    const v = judgeMigration(source.checks.at(-1), target.checks[0], [], 400);
    assert.equal(v.guestContinues, true);
    assert.equal(v.checksumsOk, true);
    assert.deepEqual(v.lastSourceTick, { n: 1000, seconds: 80 });
    assert.deepEqual(v.firstTargetTick, { n: 1001, seconds: 82.5 });
    assert.equal(v.guestClockGapMs, 2500);
    assert.equal(v.downtimeMs, 2100);
    assert.deepEqual(v.reasons, []);
  });

  it('fails a guest that restarted on the target', () => {
    const source = parseGuestConsole('FERRY-CHECK 2 bad=0 slots=256 last=400:30 gap=1:1-2:1.1');
    const restarted = parseGuestConsole('FERRY-CHECK 1 bad=0 slots=0 last=0:0 gap=0:0-0:0');
    const v = judgeMigration(source.checks.at(-1), restarted.checks[0], [], 0);
    assert.equal(v.guestContinues, false);
    assert.equal(v.downtimeMs, null);
    assert.match(v.reasons.join('; '), /check count went from 2 to 1/);
  });

  it('fails checksums when a check failed or the target never checked', () => {
    const before = parseGuestConsole('FERRY-CHECK 2 bad=0 slots=256 last=400:30 gap=1:1-2:1.1').checks[0];
    const failed = parseGuestConsole('FERRY-BAD /data/s7=9\nFERRY-CHECK 3 bad=1 slots=256 last=900:60 gap=500:40-501:42');
    assert.equal(judgeMigration(before, failed.checks[0], failed.bad, 0).checksumsOk, false);
    const silent = judgeMigration(before, undefined, [], 0);
    assert.equal(silent.checksumsOk, false);
    assert.match(silent.reasons.join('; '), /did not report a check on the target/);
  });
});
