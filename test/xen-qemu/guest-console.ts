// Reading what the guest said about itself (guest-init.sh) on its console, as xenconsoled logged
// it on each host, and judging a migration from two of its checks: the last one on the source before
// the move and the first one on the target after it.

export interface TickStamp {
  n: number;
  /** The guest's boot-time clock, seconds. */
  seconds: number;
}

export interface GuestCheck {
  /** How many checks this guest has run, itself included (it lives in guest memory). */
  k: number;
  /** Failed checks so far. */
  bad: number;
  slots: number;
  last: TickStamp;
  /** The two consecutive ticks with the longest pause between them since the previous check. */
  gapFrom: TickStamp;
  gapTo: TickStamp;
}

export interface GuestConsole {
  ready: boolean;
  checks: GuestCheck[];
  /** What failed, as the guest named it. */
  bad: string[];
}

const stamp = (s: string): TickStamp => {
  const [n, seconds] = s.split(':');
  return { n: Number(n), seconds: Number(seconds) };
};

export function parseGuestConsole(text: string): GuestConsole {
  const out: GuestConsole = { ready: false, checks: [], bad: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if (line.includes('FERRY-GUEST-READY')) out.ready = true;
    else if ((m = /FERRY-BAD (\S+)/.exec(line))) out.bad.push(m[1]);
    else if ((m = /FERRY-CHECK (\d+) bad=(\d+) slots=(\d+) last=(\S+) gap=(\S+)-(\S+)$/.exec(line))) {
      out.checks.push({ k: Number(m[1]), bad: Number(m[2]), slots: Number(m[3]), last: stamp(m[4]), gapFrom: stamp(m[5]), gapTo: stamp(m[6]) });
    }
  }
  return out;
}

export interface MigrationVerdict {
  /** The same guest went on: its check count and its counter continued, without a jump. */
  guestContinues: boolean;
  /** Nothing failed on either side, and the guest checked its memory on the target. */
  checksumsOk: boolean;
  /** The ticks around the longest pause after the source's last check: the move. */
  lastSourceTick: TickStamp | null;
  firstTargetTick: TickStamp | null;
  /** That pause on the guest's own clock, minus the hosts' clock skew (target - source). */
  downtimeMs: number | null;
  /** The uncorrected pause of the guest's clock. */
  guestClockGapMs: number | null;
  reasons: string[];
}

/**
 * `before` is the guest's last check on the source, `after` its first on the target. `skewMs` is
 * the target host's wall clock minus the source's: Linux adds the time Xen's wall clock says it
 * spent suspended to the guest's boot-time clock, so a skew between the hosts shows up in the
 * pause and is taken out again.
 */
export function judgeMigration(before: GuestCheck | undefined, after: GuestCheck | undefined, badLines: string[], skewMs: number): MigrationVerdict {
  const reasons: string[] = [];
  if (!before) reasons.push('the guest did not report a check on the source before the move');
  if (!after) reasons.push('the guest did not report a check on the target after the move');
  let guestContinues = false;
  if (before && after) {
    if (after.k !== before.k + 1) reasons.push(`the guest's check count went from ${before.k} to ${after.k} (restarted?)`);
    else if (after.last.n <= before.last.n) reasons.push(`the counter did not advance on the target (${before.last.n} -> ${after.last.n})`);
    else if (after.gapTo.n !== after.gapFrom.n + 1 || after.gapFrom.n < before.last.n) {
      reasons.push(`the longest pause is not between consecutive ticks after the source's check (${after.gapFrom.n} -> ${after.gapTo.n})`);
    } else guestContinues = true;
  }
  if (badLines.length > 0) reasons.push(`checks failed: ${badLines.join(', ')}`);
  if (after && after.bad > 0) reasons.push(`the guest counted ${after.bad} failed checks`);
  const checksumsOk = after !== undefined && after.bad === 0 && badLines.length === 0;
  const gap = after && guestContinues ? (after.gapTo.seconds - after.gapFrom.seconds) * 1000 : null;
  return {
    guestContinues,
    checksumsOk,
    lastSourceTick: guestContinues && after ? after.gapFrom : null,
    firstTargetTick: guestContinues && after ? after.gapTo : null,
    guestClockGapMs: gap === null ? null : round(gap),
    downtimeMs: gap === null ? null : round(Math.max(0, gap - skewMs)),
    reasons,
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
