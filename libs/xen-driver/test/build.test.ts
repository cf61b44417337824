// The build/skip behaviour of the native addon, made explicit: built exactly where libxen-dev's
// headers exist, skipped with one clear line where they do not, and a driver that says "not built"
// (and what to do) instead of failing obscurely.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addonPath, buildStatus, loadXenBinding, XENCTRL_HEADER, XenDriverNotBuiltError } from '@ferry/xen-driver';

const packageDir = join(__dirname, '..');
const SKIP_LINE = 'libxen-dev not found: the native Xen driver is not built (the emulated driver still works)';
const status = buildStatus();

function run(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('where libxen-dev is installed the addon is built; where it is not, that is said', (t) => {
  console.log(`# ${XENCTRL_HEADER}: ${status.headers ? 'present' : 'absent'}; ${status.path}: ${status.built ? 'built' : 'absent'}`);
  if (status.headers) {
    assert.ok(status.built, `libxen-dev is installed (${XENCTRL_HEADER}) but the addon ${status.path} is missing: the package's install script did not build it`);
    return;
  }
  if (!status.built) {
    assert.throws(() => loadXenBinding(), (e: unknown) => e instanceof XenDriverNotBuiltError && /not built: libxen-dev 4\.17/.test(e.message));
  }
  t.skip(`libxen-dev is not installed (${XENCTRL_HEADER} absent): the native Xen driver is not built on this host`);
});

test('a missing addon is reported as "not built", with the reason and the remedy', () => {
  const missing = join(tmpdir(), `ferry-no-such-addon-${process.pid}.node`);
  assert.throws(
    () => loadXenBinding(missing, '/nonexistent/xenctrl.h'),
    (e: unknown) =>
      e instanceof XenDriverNotBuiltError &&
      e.message === `the native Xen driver is not built: libxen-dev 4.17 (/nonexistent/xenctrl.h) is not installed on this host; install it (apt-get install libxen-dev) and run \`npm run build -w @ferry/xen-driver\``,
  );
  const dir = mkdtempSync(join(tmpdir(), 'ferry-xen-header-'));
  try {
    const header = join(dir, 'xenctrl.h');
    writeFileSync(header, '/* present */\n');
    assert.throws(() => loadXenBinding(missing, header), /not built \(.*is missing\) although libxen-dev is installed: build it with `npm run build -w @ferry\/xen-driver`/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an addon that is there but cannot be loaded is reported with the loader\'s reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-xen-bad-addon-'));
  try {
    const bogus = join(dir, 'ferry_xen.node');
    writeFileSync(bogus, 'not an ELF file');
    assert.throws(() => loadXenBinding(bogus), (e: unknown) => e instanceof XenDriverNotBuiltError && /could not be loaded: .*runtime libraries/s.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the install script skips with one line and exit status 0 when the headers are absent', async () => {
  const before = existsSync(addonPath()) ? statSync(addonPath()).mtimeMs : null;
  const r = await run(join(packageDir, 'scripts', 'build-addon.js'), packageDir, { FERRY_XENCTRL_HEADER: '/nonexistent/xenctrl.h' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${SKIP_LINE}\n`);
  assert.equal(r.stderr, '');
  assert.equal(existsSync(addonPath()) ? statSync(addonPath()).mtimeMs : null, before, 'the existing build is left alone');
});

test('the install script builds the addon when the headers are present', { timeout: 600_000 }, async (t) => {
  if (!status.headers) {
    t.skip(`libxen-dev is not installed (${XENCTRL_HEADER} absent): nothing to build`);
    return;
  }
  // A copy of the package, so the addon the other tests load is not rebuilt under them.
  const dir = mkdtempSync(join(tmpdir(), 'ferry-xen-build-'));
  try {
    for (const part of ['binding.gyp', 'package.json', 'scripts', 'src/native']) cpSync(join(packageDir, part), join(dir, part), { recursive: true });
    const r = await run(join(dir, 'scripts', 'build-addon.js'), dir, {});
    assert.equal(r.code, 0, `node-gyp failed:\n${r.stderr.slice(-4000)}`);
    const built = join(dir, 'build', 'Release', 'ferry_xen.node');
    assert.ok(existsSync(built), `${built} was not produced`);
    assert.equal(loadXenBinding(built).domctlInterfaceVersion, 0x15, "XEN_DOMCTL_INTERFACE_VERSION of Xen 4.17's headers");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
