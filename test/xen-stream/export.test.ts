// `ferry export` on a real lab cluster (NATS, two emulated hosts with their four services, the
// coordinator; every command a real `node bin/ferry.js` process): a running kv guest, partly
// ballooned out, is written as an xl migration stream that Xen's own verifier accepts; the pages
// in the file equal the domain's memory digest; the guest keeps serving; and the errors an
// operator can run into are clear.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { KvClient } from '@ferry/guest';
import { connectEmulatedDriver, kibToPages, xsPaths } from '@ferry/hypervisor';
import { DomainState, HostAgentClient, MigrationPhase, PageStreamerClient, WorkloadKind } from '@ferry/proto';
import { call } from '@ferry/runtime';
import { readDomainImage } from '@ferry/xen-stream';
import { waitFor } from '@ferry/testing';
import { leftoverShm, startTestCluster, type TestCluster } from '../support/cluster';
import { REPO_ROOT, requireVerifier, verifyStream } from './xen-verifier';

const MiB = 1024 * 1024;
const GUEST = 'kv-export';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('ferry export on a lab cluster', { timeout: 20 * 60_000 }, () => {
  let c: TestCluster;
  let dir: string;
  let agent: HostAgentClient;
  let streamer: PageStreamerClient;

  function ferry(...args: string[]): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [join(REPO_ROOT, 'bin', 'ferry.js'), ...args],
        { cwd: REPO_ROOT, env: { ...process.env, FERRY_COORDINATOR: c.lab.coordinator }, timeout: 600_000, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  }

  async function guest() {
    const [d] = await c.domainsNamed(GUEST);
    assert.ok(d, `${GUEST} exists`);
    return d;
  }

  before(async () => {
    requireVerifier(); // before the cluster: a missing verifier fails the suite at once
    dir = mkdtempSync(join(tmpdir(), 'ferry-export-'));
    c = await startTestCluster(2);
    const host1 = c.lab.hosts.find((h) => h.name === 'host-1')!;
    agent = new HostAgentClient(host1.hostAgent, credentials.createInsecure());
    streamer = new PageStreamerClient(host1.pageStreamer, credentials.createInsecure());
  });

  after(async () => {
    agent?.close();
    streamer?.close();
    const emuPids = c ? c.lab.processes.filter((p) => p.name.endsWith('/emu-host')).map((p) => p.pid) : [];
    await c?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(leftoverShm(emuPids), [], 'every shared-memory object is removed');
  });

  test('a running kv guest, a quarter ballooned out: an xl stream Xen\'s verifier accepts, XTAB for the ballooned pages, the guest serves on', async () => {
    const d = await c.ferry.createDomain('host-1', { name: GUEST, memoryBytes: 64 * MiB, workload: { kind: WorkloadKind.WORKLOAD_KIND_KV, seed: 6, freeFraction: 0.5 } });
    const kv = await KvClient.connect(d.serviceAddress);
    try {
      for (let i = 0; i < 50; i++) await kv.set(`key-${i}`, `value-${i}`);
    } finally {
      kv.close();
    }
    // Balloon the guest down to 48 MiB through xenstore's memory/target, as `xl mem-set` does.
    const hypervisor = await connectEmulatedDriver(c.lab.hosts.find((h) => h.name === 'host-1')!.emuSocket);
    try {
      await hypervisor.xenstoreWrite(xsPaths.memoryTarget(d.domid), String(48 * 1024));
    } finally {
      await hypervisor.close();
    }
    const ballooned = await waitFor('the balloon to settle at 48 MiB', async () => {
      const now = await guest();
      return Number(now.nrPages) <= kibToPages(48 * 1024) ? now : undefined;
    }, 120_000);

    const file = join(dir, 'kv.xl');
    const run = await ferry('export', GUEST, '--out', file, '--json');
    assert.equal(run.code, 0, run.stderr);
    const r = JSON.parse(run.stdout.trim());
    assert.equal(r.domain, GUEST);
    assert.equal(r.host, 'host-1');
    assert.equal(r.left_paused, false);
    assert.equal(r.pages + r.unpopulated_pages, Number(ballooned.maxPages), 'every pfn below max_pages is listed once');
    assert.ok(r.unpopulated_pages >= kibToPages(16 * 1024), `the ballooned 16 MiB are XTAB entries (${r.unpopulated_pages})`);
    assert.equal(r.stream_bytes, readFileSync(file).length);

    const verdict = await verifyStream(file, 'xl');
    assert.equal(verdict.code, 0, `Xen's verifier refused the export:\n${verdict.stdout}\n${verdict.stderr}`);
    assert.match(verdict.stdout, /Processed xl header/);
    assert.match(verdict.stdout, /Domain Header: x86 HVM from Xen 4\.17/);

    const inspected = await ferry('export', '--inspect', file, '--json');
    assert.equal(inspected.code, 0, inspected.stderr);
    const i = JSON.parse(inspected.stdout.trim());
    assert.equal(i.format, 'xl');
    assert.equal(i.config.name, GUEST);
    assert.equal(i.config.max_memkb, 64 * 1024, 'static-max');
    assert.equal(i.config.target_memkb, 48 * 1024, 'the balloon target travels in the config, as libxl saves it');
    assert.equal(i.config.ferry.driver, 'emulated');
    assert.ok(i.config.ferry.vcpu_context_bytes > 0, 'the emulated vCPU state rides in the config');
    assert.equal(i.populated_pages, r.pages);
    assert.equal(i.unpopulated_pages, r.unpopulated_pages);
    assert.equal(i.memory_digest, r.memory_digest);

    const after = await guest();
    assert.equal(after.state, DomainState.DOMAIN_STATE_RUNNING, 'the export unpaused the guest');
    const again = await KvClient.connect(after.serviceAddress);
    try {
      for (let k = 0; k < 50; k++) assert.equal(await again.get(`key-${k}`), `value-${k}`);
    } finally {
      again.close();
    }
  });

  test('the pages in the file equal the domain\'s memory digest (a paused domain stays paused)', async () => {
    const d = await guest();
    await call(agent.pauseDomain, agent, { domid: d.domid });
    try {
      const file = join(dir, 'paused.xl');
      const run = await ferry('export', GUEST, '--out', file, '--json');
      assert.equal(run.code, 0, run.stderr);
      const r = JSON.parse(run.stdout.trim());
      assert.equal(r.left_paused, true);
      assert.equal((await guest()).state, DomainState.DOMAIN_STATE_PAUSED, 'still paused after the export');

      const image = await readDomainImage(readFileSync(file));
      const digest = await call(streamer.memoryDigest, streamer, { domid: d.domid, algorithm: 0 });
      assert.equal(image.memory.populatedCount, Number(digest.pageCount), 'as many pages in the file as populated in the domain');
      assert.equal(image.memory.digest().toString('hex'), digest.digest.toString('hex'), 'the file\'s pages are the domain\'s memory');
      assert.equal(r.memory_digest, digest.digest.toString('hex'));
      assert.equal((await verifyStream(file, 'xl')).code, 0);
    } finally {
      await call(agent.unpauseDomain, agent, { domid: d.domid });
    }
  });

  test('clear errors: unknown domain, unwritable output file, a domain mid-migration', async () => {
    const unknown = await ferry('export', 'no-such-domain', '--out', join(dir, 'none.xl'));
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no domain named "no-such-domain"/);
    assert.equal(existsSync(join(dir, 'none.xl')), false, 'no file is left behind');
    const untouched = join(dir, 'kv.xl');
    const before = readFileSync(untouched);
    const overUnknown = await ferry('export', 'no-such-domain', '--out', untouched);
    assert.equal(overUnknown.code, 1);
    assert.deepEqual(readFileSync(untouched), before, 'a failed export leaves an existing file as it was');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.partial-')), [], 'and no partial file');

    const noDir = await ferry('export', GUEST, '--out', join(dir, 'missing', 'x.xl'));
    assert.equal(noDir.code, 1);
    assert.match(noDir.stderr, /cannot write .*missing\/x\.xl: ENOENT/);
    const isDir = await ferry('export', GUEST, '--out', dir);
    assert.equal(isDir.code, 1);
    assert.match(isDir.stderr, /cannot write .*: it is a directory/);
    assert.equal((await guest()).state, DomainState.DOMAIN_STATE_RUNNING, 'a failed export leaves the guest running');

    // 20 Mbit/s keeps round 0 of the guest's memory going for many seconds.
    const started = await c.ferry.startMigration({ domainName: GUEST, targetHost: 'host-2', policy: 'xen-4.17', options: { bandwidthBps: 20_000_000 } });
    const id = started.migration!.id;
    try {
      for await (const e of c.ferry.watch(id)) {
        if (e.event?.$case === 'phaseChanged' && e.event.phaseChanged.to === MigrationPhase.MIGRATION_PHASE_PRECOPY) break;
      }
      const busy = await ferry('export', GUEST, '--out', join(dir, 'busy.xl'));
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, new RegExp(`is being migrated \\(migration ${id}\\)`));
      assert.equal(existsSync(join(dir, 'busy.xl')), false);
    } finally {
      await c.ferry.cancelMigration(id, 'test: done with the mid-migration export');
      await waitFor('the cancelled migration to end', async () => (await c.ferry.getMigration(id)).phase === MigrationPhase.MIGRATION_PHASE_DONE, 180_000);
    }
  });
});
