// The two-host rig: images built, two nested Xen hosts booted side by side, their clock offsets
// measured, and the domU created on the first. Each host forwards a fixed set of loopback ports into
// its dom0: the control shell, the xl migration receiver, and Ferry's four services plus the page
// data port (each forwarded to the same port number inside, so an address is valid on both sides).

import { execSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@ferry/lab';
import { ensureDebianRoot, type DebianRoot } from './debian-root';
import { buildDom0Image } from './dom0-image';
import { buildGuestImage, guestXlConfig } from './guest-image';
import { parseGuestConsole, type GuestCheck } from './guest-console';
import { clockOffsetMs } from './host-clock';
import { NestedXenHost, type PortForward } from './nested-host';
import type { HarnessSettings } from './settings';

/** Inside-dom0 port of the one-shot `xl migrate-receive` listener. */
export const XL_RECEIVE_PORT = 7200;
export const GUEST_NAME = 'ferry-guest';

export interface FerryPorts {
  hostAgent: number;
  memoryTracker: number;
  balloonManager: number;
  pageStreamer: number;
  /** The page-streamer's data port inside dom0 (its outer side is a relay, see ferry-migration.ts). */
  pageData: number;
  /** The outer port forwarded to pageData. */
  pageDataForward: number;
}

export interface LabHost {
  host: NestedXenHost;
  /** Outer port forwarded to the xl receiver's port. */
  xlReceiveForward: number;
  ferry: FerryPorts;
  /** This host's wall clock minus the outer machine's, ms. */
  clockOffsetMs: number;
  bootMs: number;
}

export interface XenLab {
  settings: HarnessSettings;
  debian: DebianRoot;
  hosts: [LabHost, LabHost];
  /** The domU's xl configuration. */
  guestConfig: string;
  guestCreateMs: number;
  close(): Promise<void>;
}

export async function startXenLab(settings: HarnessSettings, log: (line: string) => void): Promise<XenLab> {
  const debian = ensureDebianRoot(settings.cacheDir, log);
  const debianXen = join(settings.cacheDir, 'xen-4.17-amd64');
  if (!existsSync(debianXen)) execSync(`zcat '${debian.xenGz}' > '${debianXen}.partial' && mv '${debianXen}.partial' '${debianXen}'`);
  const xen = settings.hypervisorOverride ?? debianXen;
  const dom0Image = buildDom0Image(debian, join(settings.runDir, 'stage', 'dom0'), join(settings.runDir, 'dom0.cpio.gz'));
  const guestImage = buildGuestImage(join(settings.runDir, 'stage', 'guest'), join(settings.runDir, 'guest.cpio.gz'));

  const started: NestedXenHost[] = [];
  const close = async () => {
    await Promise.all(started.map((h) => h.stop()));
  };
  try {
    const plans = await Promise.all(['xen-a', 'xen-b'].map(async (name) => planHost(name)));
    for (const plan of plans) {
      log(`booting ${plan.name}`);
      started.push(
        NestedXenHost.start({
          name: plan.name,
          dir: join(settings.runDir, plan.name),
          xen,
          dom0Kernel: debian.vmlinuz,
          dom0Image,
          controlPort: plan.controlPort,
          forwards: plan.forwards,
          settings,
        }),
      );
    }
    const bootMs = await Promise.all(started.map((h) => h.waitReady()));
    log(`dom0s ready after ${bootMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(' and ')}`);
    const offsets: number[] = [];
    for (const h of started) offsets.push(await clockOffsetMs(h.shell));
    log(`host clocks vs the outer machine: ${offsets.map((o) => `${o} ms`).join(', ')}`);

    const hosts = plans.map((plan, i) => ({
      host: started[i],
      xlReceiveForward: plan.xlReceiveForward,
      ferry: plan.ferry,
      clockOffsetMs: offsets[i],
      bootMs: bootMs[i],
    })) as [LabHost, LabHost];

    const guestConfig = guestXlConfig({
      name: GUEST_NAME,
      kernel: `/host${debian.vmlinuz}`,
      ramdisk: `/host${guestImage}`,
      memoryMiB: settings.guestMemoryMiB,
      checkedFiles: settings.guestCheckedFiles,
      sleepUs: settings.guestSleepUs,
      paging: settings.guestPaging,
    });
    const guestCreateMs = await createGuest(hosts[0].host, guestConfig);
    log(`guest ${GUEST_NAME} running on ${hosts[0].host.name} (${(guestCreateMs / 1000).toFixed(1)} s)`);
    return { settings, debian, hosts, guestConfig, guestCreateMs, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Creates the domU on `host` and waits until it has summed its memory; returns how long that took. */
export async function createGuest(host: NestedXenHost, config: string): Promise<number> {
  const t0 = Date.now();
  const mark = consoleMark(host);
  const readyBefore = countOf(guestConsoleText(host), 'FERRY-GUEST-READY');
  await host.shell.check(`cat > /work/${GUEST_NAME}.cfg <<'EOF'\n${config}EOF\nxl create /work/${GUEST_NAME}.cfg`, 180_000);
  await waitForConsole(host, (text) => countOf(text, 'FERRY-GUEST-READY') > readyBefore, 300_000, 'the guest to boot and sum its memory', mark);
  return Date.now() - t0;
}

/**
 * Where the domU runs; if it runs nowhere (the emulator crashed it), destroys what is left of it
 * and creates it again on `fallback`.
 */
export async function ensureGuest(lab: XenLab, fallback: LabHost, log: (line: string) => void): Promise<LabHost> {
  for (const h of lab.hosts) {
    const state = await h.host.shell.run(`xl list ${GUEST_NAME} | awk 'NR == 2 { print $5 }'`);
    if (state.code === 0 && /^[rb-]+$/.test(state.output.trim())) return h;
  }
  log(`the domU runs on neither host: creating it again on ${fallback.host.name}`);
  for (const h of lab.hosts) await h.host.shell.run(`xl destroy ${GUEST_NAME} 2>/dev/null; xl destroy ${GUEST_NAME}--incoming 2>/dev/null; true`);
  await createGuest(fallback.host, lab.guestConfig);
  return fallback;
}

const countOf = (text: string, word: string) => text.split(word).length - 1;

async function planHost(name: string) {
  const controlPort = await freePort();
  const xlReceiveForward = await freePort();
  const ferry: FerryPorts = {
    hostAgent: await freePort(),
    memoryTracker: await freePort(),
    balloonManager: await freePort(),
    pageStreamer: await freePort(),
    pageData: await freePort(),
    pageDataForward: await freePort(),
  };
  const forwards: PortForward[] = [
    { outer: xlReceiveForward, inner: XL_RECEIVE_PORT },
    ...[ferry.hostAgent, ferry.memoryTracker, ferry.balloonManager, ferry.pageStreamer].map((p) => ({ outer: p, inner: p })),
    { outer: ferry.pageDataForward, inner: ferry.pageData },
  ];
  return { name, controlPort, xlReceiveForward, ferry, forwards };
}

/** All guest console logs xenconsoled wrote on `host`, oldest first, as one text. */
export function guestConsoleText(host: NestedXenHost): string {
  const dir = join(host.opts.dir, 'console');
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .filter((f) => f.startsWith('guest-'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
}

export interface ConsoleMark {
  guest: number;
  xen: number;
}

/** Where the guest's and Xen's console logs end now: a crash note looks only past this. */
export function consoleMark(host: NestedXenHost): ConsoleMark {
  return { guest: guestConsoleText(host).length, xen: existsSync(host.consoleLog) ? readFileSync(host.consoleLog, 'utf8').length : 0 };
}

/** What the guest's console and Xen's say about a guest crash on `host` (past `since`), if anything. */
export function guestCrashNote(host: NestedXenHost, since: ConsoleMark = { guest: 0, xen: 0 }): string {
  const notes: string[] = [];
  const panic = /Kernel panic[^\n]*|BUG: [^\n]*/.exec(guestConsoleText(host).slice(since.guest));
  if (panic) notes.push(`guest: ${panic[0].replace(/^\[[^\]]*\]\s*/, '').trim()}`);
  const xenLog = existsSync(host.consoleLog) ? readFileSync(host.consoleLog, 'utf8').slice(since.xen) : '';
  const fault = /\(XEN\) (d\d+v\d+ Triple fault[^\n]*)/.exec(xenLog);
  if (fault) notes.push(`xen: ${fault[1].trim()}`);
  return notes.length > 0 ? ` (the guest crashed on ${host.name}: ${notes.join('; ')})` : '';
}

/**
 * Asks the guest on `host` for a check (dom0 writes "check" to the guest console's pty) and
 * returns the check it then reports, or undefined if none comes within `timeoutMs`.
 */
export async function guestCheck(host: NestedXenHost, timeoutMs: number): Promise<GuestCheck | undefined> {
  const seen = parseGuestConsole(guestConsoleText(host)).checks.length;
  const mark = consoleMark(host);
  const asked = await host.shell.run(
    `d=$(xl domid ${GUEST_NAME}) && tty=$(xenstore-read /local/domain/$d/console/tty) && echo check > "$tty"`,
  );
  if (asked.code !== 0) return undefined;
  try {
    await waitForConsole(host, (text) => parseGuestConsole(text).checks.length > seen, timeoutMs, 'the guest to report a check', mark);
  } catch {
    return undefined;
  }
  return parseGuestConsole(guestConsoleText(host)).checks.at(-1);
}

export async function waitForConsole(
  host: NestedXenHost,
  done: (text: string) => boolean,
  timeoutMs: number,
  what: string,
  crashSince?: ConsoleMark,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = guestConsoleText(host);
    if (done(text)) return;
    if (host.exited) throw new Error(`${host.name}: QEMU ${host.exited} while waiting for ${what}`);
    const crash = crashSince ? guestCrashNote(host, crashSince) : '';
    if (crash) throw new Error(`gave up waiting for ${what}${crash}`);
    if (Date.now() > deadline) throw new Error(`${host.name}: timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * A reason naming a crash of the guest on `host` after the move, when it did not answer a check
 * there (empty otherwise): so that a domU the emulator crashed on the target is a lost attempt
 * (run.ts retries it), with the crash in the record.
 */
export function crashedAfter(after: GuestCheck | undefined, host: NestedXenHost, since: ConsoleMark): string[] {
  if (after) return [];
  const note = guestCrashNote(host, since);
  return note ? [`no check from the guest on ${host.name} after the move${note}`] : [];
}
