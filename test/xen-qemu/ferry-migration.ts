// The Ferry half: the same running domU migrated by Ferry. NATS and the migration-coordinator run
// on the outer machine; each nested dom0 runs the four per-host services with the native driver
// (dom0-services.ts). The page data the source's page-streamer sends to the target's passes through
// a counting relay on the outer machine, as the xl half's stream does, so both count the same way.
// On the target, Xen's stock receiver (xl migrate-receive, run by the host-agent's driver) restores
// the domain from Xen's stream, which the target's page-streamer builds from what it receives; the
// host-agent tees that stream into the host's work share, and Xen's verifier judges it.
// A failure names the missing piece from the service's or the coordinator's own words.

import { existsSync, mkdirSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FerryClient, migrationSummary, type PolicyName } from '@ferry/client';
import { spawnProcess, startNatsServer, stopProcess, type SpawnedProcess } from '@ferry/lab';
import { MigrationOutcome, migrationPhaseToJSON } from '@ferry/proto';
import { CountingRelay } from './counting-relay';

import { lastWords, startDom0Services, stopDom0Services, waitDom0ServicesReady, XL_STREAM_CAPTURE } from './dom0-services';
import { judgeMigration, parseGuestConsole } from './guest-console';
import { buildServiceBundles } from './service-bundles';
import type { HalfResult } from './half-result';
import { verifyStream } from './stream-verifier';
import { consoleMark, crashedAfter, GUEST_NAME, guestCheck, guestConsoleText, guestCrashNote, type LabHost, type XenLab } from './xen-lab';

const SERVICES_READY_MS = 300_000;
const XL_MAGIC = Buffer.from('Xen saved domain, xl format\n', 'latin1');

export async function migrateWithFerry(lab: XenLab, from: LabHost, to: LabHost, log: (line: string) => void): Promise<HalfResult> {
  // A folder per attempt: a retry must not find the previous attempt's logs (spawnProcess would
  // take the old coordinator's "ready" line, and its address, for the new one's).
  let dir = join(lab.settings.runDir, 'ferry');
  for (let n = 2; existsSync(dir); n++) dir = join(lab.settings.runDir, `ferry-${n}`);
  mkdirSync(dir, { recursive: true });
  const policy = (process.env.FERRY_XEN_POLICY ?? 'layered') as PolicyName;
  const processes: SpawnedProcess[] = [];
  const relays: CountingRelay[] = [];
  let client: FerryClient | undefined;
  // Console positions when this attempt began (the guest runs on `from` and has reported ready).
  const guestMark = consoleMark(from.host);
  try {
    const nats = await startNatsServer(join(dir, 'nats'), join(dir, 'nats.log'), false);
    processes.push(nats.process);
    const natsPort = Number(new URL(nats.url).port);
    const coordinator = await spawnProcess({
      name: 'migration-coordinator',
      entry: 'services/migration-coordinator/src/main.ts',
      logFile: join(dir, 'migration-coordinator.log'),
      detached: false,
      env: { NATS_URL: nats.url, FERRY_LISTEN: '127.0.0.1:0', FERRY_HOST: 'coordinator', FERRY_COORDINATOR_STATE: join(dir, 'coordinator') },
    });
    processes.push(coordinator);
    client = new FerryClient(String(coordinator.ready.address), { deadlineMs: 120_000 });

    // Page data bound for a host arrives at the relay listening on that host's data port number.
    const dataCapture = join(dir, `page-data-to-${to.host.name}.bin`);
    for (const h of [from, to]) {
      relays.push(await CountingRelay.listen({ host: '127.0.0.1', port: h.ferry.pageDataForward }, h === to ? dataCapture : undefined, h.ferry.pageData));
    }
    const bundles = await buildServiceBundles(join(dir, 'bundles'));
    log(`starting Ferry's services in both dom0s (FERRY_DRIVER=xen, NATS at 10.0.2.2:${natsPort})`);
    await Promise.all(
      [from, to].map((h) =>
        startDom0Services({ host: h.host, bundles, ports: h.ferry, natsUrl: `nats://10.0.2.2:${natsPort}`, peerName: (h === from ? to : from).host.name }),
      ),
    );
    await Promise.all([from, to].map((h) => waitDom0ServicesReady(h.host, SERVICES_READY_MS)));
    const hosts = await client.listHosts();
    log(`registered hosts: ${hosts.map((h) => h.host?.name ?? '?').join(', ')}`);

    // The emulator may crash the idle guest while the services start: that is a lost attempt too.
    const earlyCrash = guestCrashNote(from.host, guestMark);
    if (earlyCrash) throw new Error(`the guest did not survive until the move${earlyCrash}`);
    const startMark = guestMark;
    const before = await guestCheck(from.host, 120_000);
    if (!before) throw new Error(`the guest did not answer a check on ${from.host.name} before the move${guestCrashNote(from.host, startMark)}`);
    log(`ferry migrate ${GUEST_NAME}: ${from.host.name} -> ${to.host.name} (policy ${policy})`);
    const targetMark = consoleMark(to.host);
    const t0 = Date.now();
    const started = await client.startMigration({ domainName: GUEST_NAME, sourceHost: from.host.name, targetHost: to.host.name, policy });
    const id = started.migration?.id;
    if (!id) throw new Error('StartMigration returned no migration id');
    const ended = await withTimeout(client.waitForEnd(id), lab.settings.migrationTimeoutSec * 1000, `migration ${id}`);
    const totalMs = Date.now() - t0;
    const summary = migrationSummary(ended);
    if (ended.outcome !== MigrationOutcome.MIGRATION_OUTCOME_SUCCEEDED) {
      const f = ended.failure;
      const where = f ? ` in ${migrationPhaseToJSON(f.phase)} on ${f.host || 'the cluster'}: ${f.reason}` : '';
      throw new Error(`Ferry's migration ${summary.outcome}${where}`);
    }
    log(`Ferry's migration succeeded in ${(totalMs / 1000).toFixed(1)} s`);

    const sourceGone = (await from.host.shell.run(`xl domid ${GUEST_NAME}`)).code !== 0;
    const targetState = await to.host.shell.run(`xl list ${GUEST_NAME}`);
    const after = await guestCheck(to.host, 180_000);
    const counts = await Promise.all(relays.map((r) => r.close()));
    const badLines = [from, to].flatMap((h) => parseGuestConsole(guestConsoleText(h.host)).bad);
    const verdict = judgeMigration(before, after, badLines, to.clockOffsetMs - from.clockOffsetMs);
    // The relay carries Ferry's own page-data protocol; what Xen's receiver got is the stream the
    // target's host-agent handed to xl migrate-receive (teed into the host's work share).
    const xlStream = join(to.host.opts.dir, 'ferry', basename(XL_STREAM_CAPTURE));
    const stream = startsWith(xlStream, XL_MAGIC)
      ? verifyStream(lab.debian, xlStream, 'xl')
      : { verified: false, summary: `the target handed no xl stream to xl migrate-receive (${xlStream} is missing or not an xl stream)` };
    return {
      ok: verdict.guestContinues && verdict.checksumsOk && sourceGone && targetState.code === 0 && stream.verified,
      from: from.host.name,
      to: to.host.name,
      bytes: counts[1].forwardBytes,
      bytes_back: counts[1].backwardBytes,
      total_ms: totalMs,
      downtime_ms: verdict.downtimeMs,
      rounds: summary.rounds,
      guest_continues: verdict.guestContinues,
      checksums_ok: verdict.checksumsOk,
      source_gone: sourceGone,
      target_running: targetState.code === 0,
      stream_verified: stream.verified,
      stream_summary: stream.summary,
      guest_clock_gap_ms: verdict.guestClockGapMs,
      host_clock_skew_ms: Math.round((to.clockOffsetMs - from.clockOffsetMs) * 10) / 10,
      tick_ms: lab.settings.guestSleepUs / 1000,
      reasons: [...verdict.reasons, ...crashedAfter(after, to.host, targetMark), ...(sourceGone ? [] : ['the source domain still exists']), ...(stream.verified ? [] : [stream.summary])],
      coordinator: summary,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, bytes: null, total_ms: null, downtime_ms: null, error: `${message}${serviceHints(from, to)}` };
  } finally {
    client?.close();
    await Promise.all([from, to].map((h) => stopDom0Services(h.host)));
    for (const r of relays) await r.close().catch(() => {});
    for (const p of processes.reverse()) await stopProcess(p.pid);
  }
}

/** Errors the per-host services logged, appended to a failure so it names the missing piece. */
function serviceHints(...hosts: LabHost[]): string {
  const hints: string[] = [];
  for (const h of hosts) {
    for (const svc of ['host-agent', 'page-streamer', 'memory-tracker', 'balloon-manager']) {
      const file = join(h.host.opts.dir, 'ferry', `${svc}.log`);
      const words = lastWords(file);
      if (words !== '(no log)' && /error|fatal|fail|cannot|not /i.test(words)) hints.push(`${h.host.name}/${svc}: ${words}`);
    }
  }
  return hints.length > 0 ? ` [${hints.join('; ')}]` : '';
}

function startsWith(file: string, prefix: Buffer): boolean {
  try {
    if (statSync(file).size < prefix.length) return false;
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(prefix.length);
    readSync(fd, head, 0, prefix.length, 0);
    closeSync(fd);
    return head.equals(prefix);
  } catch {
    return false;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
