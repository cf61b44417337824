// How far a nested host's wall clock is from the outer machine's. Each Xen host takes its wall
// clock from QEMU's emulated RTC at boot, so two hosts can disagree by up to a second, and a
// migrated guest's clock jumps by the difference. dom0 prints its clock (busybox adjtimex) straight
// onto the control connection several times; the smallest "dom0 time - arrival time" is the offset,
// within the one-way latency of a loopback TCP hop (about a millisecond).

import type { Dom0Shell } from './dom0-shell';

export async function clockOffsetMs(shell: Dom0Shell, samples = 20): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  let pending = '';
  await shell.run(`i=0; while [ $i -lt ${samples} ]; do adjtimex; i=$((i + 1)); done`, 60_000, (chunk, atMs) => {
    pending += chunk.toString('utf8');
    for (;;) {
      const m = /time\.tv_sec:\s+(\d+)\s+time\.tv_usec:\s+(\d+)/.exec(pending);
      if (!m) break;
      pending = pending.slice(m.index + m[0].length);
      const dom0Ms = Number(m[1]) * 1000 + Number(m[2]) / 1000;
      best = Math.min(best, atMs - dom0Ms);
    }
  });
  if (!Number.isFinite(best)) throw new Error(`${shell.label}: no clock reading came back from adjtimex`);
  // best is arrival - dom0, the smallest delay seen: dom0's offset is its negation.
  return Math.round(-best * 10) / 10;
}
