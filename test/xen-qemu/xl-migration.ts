// The stock baseline: `xl migrate` of the running domU from one nested host to the other. The
// sender's transport is `nc 10.0.2.2 <relay>` (xl migrate -s '' runs its host argument as the
// command whose stdin/stdout carry the stream); the relay on the outer machine counts and captures
// the bytes and passes them to the target's forwarded port, where a one-shot `nc -l -e` runs
// `xl migrate-receive`. Figures: relay bytes, wall time of `xl migrate`, the guest's own downtime,
// the rounds as read from the captured stream (stream-passes.ts), Xen's verifier on that stream.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CountingRelay } from './counting-relay';
import type { NestedXenHost } from './nested-host';
import { judgeMigration, parseGuestConsole } from './guest-console';
import type { HalfResult } from './half-result';
import { streamPasses } from './stream-passes';
import { verifyStream } from './stream-verifier';
import { GUEST_NAME, consoleMark, crashedAfter, guestCheck, guestConsoleText, guestCrashNote, type ConsoleMark, XL_RECEIVE_PORT, type LabHost, type XenLab } from './xen-lab';

export async function migrateWithXl(lab: XenLab, from: LabHost, to: LabHost, log: (line: string) => void): Promise<HalfResult> {
  const capture = join(lab.settings.runDir, 'xl-stream.bin');
  const relay = await CountingRelay.listen({ host: '127.0.0.1', port: to.xlReceiveForward }, capture);
  try {
    const startMark = consoleMark(from.host);
    const before = await guestCheck(from.host, 120_000);
    if (!before) throw new Error(`the guest did not answer a check on ${from.host.name} before the move${guestCrashNote(from.host, startMark)}`);
    await to.host.shell.check(
      `setsid nc -l -p ${XL_RECEIVE_PORT} -e /etc/ferry/xl-receive </dev/null >/dev/null 2>&1 &\n` +
        `i=0; while ! netstat -ltn | grep -q ':${XL_RECEIVE_PORT} '; do i=$((i + 1)); [ $i -gt 100 ] && exit 1; usleep 100000; done`,
    );
    log(`xl migrate ${GUEST_NAME}: ${from.host.name} -> ${to.host.name} through relay :${relay.port}`);
    const targetMark = consoleMark(to.host);
    const t0 = Date.now();
    const mark = consoleMark(from.host);
    const sent = await untilGuestCrashes(
      from.host,
      mark,
      from.host.shell.run(`xl -vvv migrate -s '' ${GUEST_NAME} 'nc 10.0.2.2 ${relay.port}' 2>/work/xl-migrate.log`, lab.settings.migrationTimeoutSec * 1000),
    );
    const totalMs = Date.now() - t0;
    const senderLog = readFileSync(join(from.host.opts.dir, 'xl-migrate.log'), 'utf8');
    if (sent.code !== 0) {
      const why = senderLog.split('\n').filter((l) => /error|failed/i.test(l)).slice(-4).join(' | ');
      throw new Error(`xl migrate exited ${sent.code}: ${why}${guestCrashNote(from.host, mark)}`);
    }
    log(`xl migrate finished in ${(totalMs / 1000).toFixed(1)} s`);

    const sourceGone = (await from.host.shell.run(`xl domid ${GUEST_NAME}`)).code !== 0;
    const targetState = await to.host.shell.run(`xl list ${GUEST_NAME}`);
    const after = await guestCheck(to.host, 180_000);

    const counts = await relay.close();
    const badLines = [from, to].flatMap((h) => parseGuestConsole(guestConsoleText(h.host)).bad);
    const verdict = judgeMigration(before, after, badLines, to.clockOffsetMs - from.clockOffsetMs);
    const stream = verifyStream(lab.debian, capture, 'xl');
    const passes = await streamPasses(capture);
    return {
      ok: verdict.guestContinues && verdict.checksumsOk && sourceGone && targetState.code === 0 && stream.verified,
      from: from.host.name,
      to: to.host.name,
      bytes: counts.forwardBytes,
      bytes_back: counts.backwardBytes,
      total_ms: totalMs,
      downtime_ms: verdict.downtimeMs,
      rounds: passes.pagesPerPass.length,
      pages_per_round: passes.pagesPerPass,
      guest_continues: verdict.guestContinues,
      checksums_ok: verdict.checksumsOk,
      source_gone: sourceGone,
      target_running: targetState.code === 0,
      stream_verified: stream.verified,
      stream_summary: stream.summary,
      guest_clock_gap_ms: verdict.guestClockGapMs,
      host_clock_skew_ms: Math.round((to.clockOffsetMs - from.clockOffsetMs) * 10) / 10,
      tick_ms: lab.settings.guestSleepUs / 1000,
      reasons: [...verdict.reasons, ...crashedAfter(after, to.host, targetMark), ...(sourceGone ? [] : ['the source domain still exists']), ...(stream.verified ? [] : [`verify-stream-v2: ${stream.summary}`])],
    };
  } finally {
    await relay.close().catch(() => {});
  }
}

/**
 * A guest that crashes mid-migration leaves `xl migrate` waiting for a suspend that never comes
 * (60 s per attempt): watch the guest's and Xen's consoles and give up as soon as it crashes.
 */
async function untilGuestCrashes<T>(host: NestedXenHost, since: ConsoleMark, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const crashed = new Promise<never>((_, reject) => {
    const look = () => {
      const note = guestCrashNote(host, since);
      if (note) reject(new Error(`xl migrate did not finish${note}`));
      else timer = setTimeout(look, 3000);
    };
    timer = setTimeout(look, 3000);
  });
  try {
    return await Promise.race([work, crashed]);
  } finally {
    clearTimeout(timer);
  }
}

