// npm run test:xen — two real Xen 4.17 hosts nested under QEMU (TCG), one running PVH domU that
// keeps a counter and checks memory checksums, migrated live with stock `xl migrate` (host a -> b)
// and then with Ferry (b -> a); prints one JSON object comparing both and exits non-zero unless
// everything held. Progress goes to stderr; the JSON alone goes to stdout.
//
// Environment (all optional): FERRY_XEN_HALVES=xl,ferry  FERRY_XEN_KEEP=1 (keep the run folder)
// FERRY_XEN_CACHE, FERRY_XEN_QEMU_TIMEOUT, FERRY_XEN_BOOT_TIMEOUT, FERRY_XEN_MIGRATION_TIMEOUT,
// FERRY_XEN_GUEST_MIB, FERRY_XEN_GUEST_HOT_KIB (see settings.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateWithFerry } from './ferry-migration';
import { failedHalf, type HalfResult } from './half-result';
import { checkPrerequisites } from './prerequisites';
import { loadSettings } from './settings';
import { migrateWithXl } from './xl-migration';
import { ensureGuest, startXenLab, type LabHost, type XenLab } from './xen-lab';

const started = Date.now();
const log = (line: string) => process.stderr.write(`[xen-qemu +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

interface Report {
  outcome: 'passed' | 'failed';
  guest_continues: boolean;
  checksums_ok: boolean;
  stream_verified: boolean;
  xl: HalfResult;
  ferry: HalfResult;
  hosts?: Array<{ name: string; boot_ms: number; clock_offset_ms: number }>;
  guest?: { memory_mib: number; create_ms: number };
  wall_ms: number;
  run_dir?: string;
  error?: string;
}

/**
 * Runs one half again (on a fresh domU) when the domU crashed the way QEMU 7.2's TCG makes busy
 * guests crash (guest-init.sh): that is the emulator failing, not what is measured. Every earlier
 * attempt's error stays in the result.
 */
async function withRetries(attempts: number, half: string, run: () => Promise<HalfResult>): Promise<HalfResult> {
  const earlier: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const result = await run().catch(failedHalf);
    const why = result.error ?? (result.reasons ?? []).join('; ');
    if (result.ok || !why.includes('the guest crashed on') || attempt >= attempts) {
      return { ...result, attempts: attempt, ...(earlier.length > 0 ? { earlier_attempts: earlier } : {}) };
    }
    earlier.push(why);
    log(`${half}: attempt ${attempt} lost the domU to the emulator${why.slice(why.indexOf(' (the guest crashed'))}; trying again`);
  }
}

async function main(): Promise<number> {
  const runDir = mkdtempSync(join(tmpdir(), 'ferry-xen-qemu-'));
  const settings = loadSettings(runDir);
  const skipped = (half: string): HalfResult => ({ ok: false, error: `not run (FERRY_XEN_HALVES=${settings.halves.join(',')} leaves out ${half})` });
  const report: Report = {
    outcome: 'failed',
    guest_continues: false,
    checksums_ok: false,
    stream_verified: false,
    xl: skipped('xl'),
    ferry: skipped('ferry'),
    wall_ms: 0,
  };
  let lab: XenLab | undefined;
  try {
    checkPrerequisites();
    lab = await startXenLab(settings, log);
    const [a, b] = lab.hosts;
    report.hosts = lab.hosts.map((h) => ({ name: h.host.name, boot_ms: h.bootMs, clock_offset_ms: h.clockOffsetMs }));
    report.guest = { memory_mib: settings.guestMemoryMiB, create_ms: lab.guestCreateMs };
    const live = lab;
    const other = (h: LabHost) => (h === a ? b : a);
    if (settings.halves.includes('xl')) {
      // xl moves the domU from a to b; an attempt whose domU the emulator crashed starts again on a.
      report.xl = await withRetries(settings.attempts, 'xl', async () => {
        const from = await ensureGuest(live, a, log);
        return migrateWithXl(live, from, other(from), log);
      });
    }
    if (settings.halves.includes('ferry')) {
      // Ferry moves the domU on from wherever it runs now (b after a good xl half).
      report.ferry = await withRetries(settings.attempts, 'ferry', async () => {
        const from = await ensureGuest(live, a, log);
        return migrateWithFerry(live, from, other(from), log);
      });
    }
  } catch (err) {
    report.error = err instanceof Error ? err.message : String(err);
  } finally {
    await lab?.close();
  }
  const halves = settings.halves.map((h) => report[h]);
  report.guest_continues = halves.length > 0 && halves.every((h) => h.guest_continues === true);
  report.checksums_ok = halves.length > 0 && halves.every((h) => h.checksums_ok === true);
  report.stream_verified = halves.length > 0 && halves.every((h) => h.stream_verified === true);
  report.outcome = report.error === undefined && halves.length > 0 && halves.every((h) => h.ok) ? 'passed' : 'failed';
  report.wall_ms = Date.now() - started;
  if (report.outcome === 'failed' || settings.keepRunDir) report.run_dir = runDir;
  else rmSync(runDir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  return report.outcome === 'passed' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`xen-qemu: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
