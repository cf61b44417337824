// Every knob of the nested-Xen harness in one place: where things are cached and written, sizes of
// the nested hosts and the guest, and the time bounds. Environment variables override the defaults.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
};

export interface HarnessSettings {
  /** Debian packages and their unpacked root, kept between runs (never committed). */
  cacheDir: string;
  /** This run's images, logs, captured streams. */
  runDir: string;
  /** Keep runDir after the run (it is removed on success otherwise). */
  keepRunDir: boolean;
  /** Memory of each QEMU, and of its dom0, in MiB. */
  qemuMemoryMiB: number;
  dom0MemoryMiB: number;
  /** vCPUs of each QEMU. */
  qemuCpus: number;
  /** TCG threading: 'single' runs all of a QEMU's vCPUs on one host thread, one core per QEMU. */
  tcgThread: 'single' | 'multi';
  /** A hypervisor image to boot instead of Debian's (FERRY_XEN_HYPERVISOR). */
  hypervisorOverride: string | undefined;
  /** Paging of the domU: 'hap' (nested paging) or 'shadow' (needs a hypervisor built with SHADOW_PAGING). */
  guestPaging: 'hap' | 'shadow';
  /** Extra options for the hypervisor's command line (FERRY_XEN_ARGS), e.g. "hap_2mb=0". */
  xenExtraArgs: string[];
  /** The migrated domU. */
  guestMemoryMiB: number;
  guestCheckedFiles: number;
  guestSleepUs: number;
  /** Hard bound of each QEMU's life (coreutils `timeout` kills it). */
  qemuTimeoutSec: number;
  /** How long a dom0 may take to report ready. */
  bootTimeoutSec: number;
  /** How long one migration may take. */
  migrationTimeoutSec: number;
  /** Runs of a half that may be lost to the emulator crashing the domU (FERRY_XEN_ATTEMPTS). */
  attempts: number;
  /** Which halves to run. */
  halves: Array<'xl' | 'ferry'>;
}

export function loadSettings(runDir: string): HarnessSettings {
  const cacheRoot = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const halves = (process.env.FERRY_XEN_HALVES ?? 'xl,ferry').split(',').map((h) => h.trim());
  for (const h of halves) if (h !== 'xl' && h !== 'ferry') throw new Error(`FERRY_XEN_HALVES: unknown half "${h}" (xl, ferry)`);
  return {
    cacheDir: process.env.FERRY_XEN_CACHE ?? join(cacheRoot, 'ferry', 'xen-qemu'),
    runDir,
    keepRunDir: process.env.FERRY_XEN_KEEP === '1',
    qemuMemoryMiB: num('FERRY_XEN_QEMU_MIB', 2048),
    dom0MemoryMiB: num('FERRY_XEN_DOM0_MIB', 1024),
    qemuCpus: num('FERRY_XEN_QEMU_CPUS', 2),
    tcgThread: process.env.FERRY_XEN_TCG_THREAD === 'multi' ? 'multi' : 'single',
    hypervisorOverride: process.env.FERRY_XEN_HYPERVISOR || undefined,
    guestPaging: process.env.FERRY_XEN_GUEST_PAGING === 'shadow' ? 'shadow' : 'hap',
    xenExtraArgs: (process.env.FERRY_XEN_ARGS ?? '').split(' ').filter(Boolean),
    guestMemoryMiB: num('FERRY_XEN_GUEST_MIB', 128),
    guestCheckedFiles: num('FERRY_XEN_GUEST_FILES', 16),
    guestSleepUs: num('FERRY_XEN_GUEST_SLEEP_US', 1_000_000),
    qemuTimeoutSec: num('FERRY_XEN_QEMU_TIMEOUT', 900),
    bootTimeoutSec: num('FERRY_XEN_BOOT_TIMEOUT', 240),
    migrationTimeoutSec: num('FERRY_XEN_MIGRATION_TIMEOUT', 420),
    attempts: num('FERRY_XEN_ATTEMPTS', 3),
    halves: halves as Array<'xl' | 'ferry'>,
  };
}
