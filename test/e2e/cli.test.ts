// The ferry command as a user runs it: lab up/status/down, hosts, domains, domain create,
// migrate --json --load, and clear errors. Every command is a real `node bin/ferry.js` process.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, REPO_ROOT, startNatsServer, stopProcess, type SpawnedProcess } from '@ferry/lab';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function ferry(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin', 'ferry.js'), ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function json(r: Run): unknown {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one line of JSON on stdout, got:\n${r.stdout}`);
  return JSON.parse(lines[0]);
}

describe('the ferry command', { timeout: 15 * 60_000 }, () => {
  let dir: string;
  let nats: SpawnedProcess;
  let env: Record<string, string>;
  let labDir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
    nats = (await startNatsServer(join(dir, 'nats'), join(dir, 'nats.log'), false)).process;
    labDir = join(dir, 'lab');
    env = { NATS_URL: `nats://127.0.0.1:${nats.ready.port}`, FERRY_LAB_DIR: labDir };
  });

  after(async () => {
    await ferry(['lab', 'down'], env);
    await stopProcess(nats.pid);
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab up starts a cluster and lab status --json describes it', async () => {
    const up = json(await ferry(['lab', 'up', '--hosts', '2', '--json'], env)) as { coordinator: string; hosts: Array<{ name: string }>; nats: string };
    assert.match(up.coordinator, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(up.hosts.map((h) => h.name), ['host-1', 'host-2']);
    assert.equal(up.nats, env.NATS_URL, 'the lab uses the NATS that NATS_URL names');
    const status = json(await ferry(['lab', 'status', '--json'], env)) as { running: boolean; coordinator: string; hosts: unknown[]; nats: string };
    assert.equal(status.running, true);
    assert.equal(status.coordinator, up.coordinator);
    assert.equal(status.hosts.length, 2);
    assert.equal(status.nats, env.NATS_URL);
  });

  test('hosts, domain create and domains list what is there', async () => {
    const hosts = json(await ferry(['hosts', '--json'], env)) as Array<{ name: string }>;
    assert.deepEqual(hosts.map((h) => h.name).sort(), ['host-1', 'host-2']);
    const created = json(await ferry(['domain', 'create', '--host', 'host-1', '--name', 'cli-kv', '--workload', 'kv', '--memory', '64MiB', '--free', '0.5', '--json'], env)) as { name: string; host: string; state: string };
    assert.deepEqual([created.name, created.host, created.state], ['cli-kv', 'host-1', 'running']);
    const domains = json(await ferry(['domains', '--json'], env)) as Array<{ name: string; host: string; state: string }>;
    assert.ok(domains.some((d) => d.name === 'cli-kv' && d.host === 'host-1' && d.state === 'running'), JSON.stringify(domains));
  });

  test('migrate --json --load prints one summary object with what the client saw', async () => {
    const s = json(await ferry(['migrate', 'cli-kv', '--to', 'host-2', '--policy', 'layered', '--verify', '--load', '--json'], env)) as Record<string, unknown> & { app: Record<string, number> };
    for (const k of ['id', 'domain', 'source', 'target', 'policy', 'outcome', 'rounds', 'pages_sent', 'bytes_sent', 'zero_pages', 'deferred_pages', 'balloon_released_pages', 'total_ms', 'downtime_ms', 'memory_verified', 'trace_id']) {
      assert.ok(k in s, `summary has ${k}`);
    }
    assert.equal(s.outcome, 'succeeded');
    assert.equal(s.memory_verified, true);
    assert.deepEqual([s.domain, s.source, s.target, s.policy], ['cli-kv', 'host-1', 'host-2', 'layered']);
    for (const k of ['requests', 'errors', 'max_gap_ms', 'lost_writes']) assert.equal(typeof s.app[k], 'number', `app.${k}`);
    assert.equal(s.app.lost_writes, 0);
    const domains = json(await ferry(['domains', '--json'], env)) as Array<{ name: string; host: string }>;
    assert.deepEqual(domains.filter((d) => d.name === 'cli-kv').map((d) => d.host), ['host-2']);
  });

  test('bad input gets a clear error and a non-zero exit', async () => {
    const unknown = await ferry(['migrate', 'no-such-domain', '--to', 'host-2', '--json'], env);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /DOMAIN_NOT_FOUND|not found/i);
    const same = await ferry(['migrate', 'cli-kv', '--to', 'host-2'], env);
    assert.notEqual(same.code, 0);
    assert.match(same.stderr, /SAME_HOST|same host|already/i);
    const usage = await ferry(['migrate', 'cli-kv'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--to <host> is required/);
  });

  test('bench --from pools the runs of earlier reports, and refuses a file that is not one', async () => {
    const runOf = (seed: number, variant: string, downtime: number, ratio: number) => ({ workload: 'kv', variant, seed, outcome: 'succeeded', bytes_sent: 1 << 20, total_ms: 1000, downtime_ms: downtime, ratio_bytes: 1, ratio_total: 1, ratio_downtime: ratio });
    const first = join(dir, 'bench-a.json');
    const second = join(dir, 'bench-b.json');
    writeFileSync(first, JSON.stringify({ runs: [runOf(1, 'xen-4.17', 20, 1), runOf(1, 'layered', 18, 0.9), runOf(2, 'xen-4.17', 20, 1), runOf(2, 'layered', 16, 0.8)] }));
    writeFileSync(second, JSON.stringify({ runs: [runOf(1, 'xen-4.17', 20, 1), runOf(1, 'layered', 20, 1)] }));
    const out = join(dir, 'pooled.json');
    const pooled = await ferry(['bench', '--from', `${first},${second}`, '--json', out], env);
    assert.equal(pooled.code, 0, pooled.stderr);
    assert.match(pooled.stdout, /down× 95%/);
    const report = JSON.parse(readFileSync(out, 'utf8')) as { runs: unknown[]; medians: Array<{ variant: string; seeds: number; ratio_downtime: number; ratio_downtime_interval?: [number, number] }> };
    assert.equal(report.runs.length, 6);
    const layered = report.medians.find((m) => m.variant === 'layered')!;
    assert.equal(layered.seeds, 3);
    assert.equal(layered.ratio_downtime, 0.9);
    assert.ok(layered.ratio_downtime_interval && layered.ratio_downtime_interval[0] >= 0.8 && layered.ratio_downtime_interval[1] <= 1);

    const notAReport = join(dir, 'not-a-report.json');
    writeFileSync(notAReport, JSON.stringify({ hello: 'world' }));
    const refused = await ferry(['bench', '--from', notAReport], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not a report of ferry bench --json/);
    const missing = await ferry(['bench', '--from', join(dir, 'no-such.json')], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no-such\.json.*ENOENT/);
    const mixed = await ferry(['bench', '--from', first, '--seeds', '1,2'], env);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /--from migrates nothing.*--seeds/);
  });

  test('lab down stops every process the lab started', async () => {
    const state = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8')) as { processes: Array<{ pid: number }> };
    assert.ok(state.processes.length >= 11, `processes: ${state.processes.length}`);
    const down = await ferry(['lab', 'down'], env);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(state.processes.filter((p) => isAlive(p.pid)).map((p) => p.pid), []);
  });
});
