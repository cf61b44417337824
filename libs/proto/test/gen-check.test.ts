// The checks around the protos: `buf lint` passes, the committed generated code is current, and
// scripts/gen-proto.mjs --check really catches drift (changed, missing and stale files) while a
// plain run repairs it. The drift cases run in a temporary copy of the inputs, never in the tree.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..', '..');
const GEN = 'libs/proto/src/gen';

function run(cwd: string, command: string, args: string[]): { status: number | null; output: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const genProto = (cwd: string, ...args: string[]) => run(cwd, process.execPath, [join(cwd, 'scripts/gen-proto.mjs'), ...args]);

const scratch = mkdtempSync(join(tmpdir(), 'ferry-proto-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('buf lint passes on proto/ with the repository config', () => {
  const { status, output } = run(root, join(root, 'node_modules/.bin/buf'), ['lint']);
  assert.equal(status, 0, output);
});

test('the committed generated code matches the protos (gen-proto --check)', () => {
  const { status, output } = genProto(root, '--check');
  assert.equal(status, 0, output);
  assert.match(output, /up to date/);
});

test('gen-proto --check reports changed, missing and stale files, and a plain run repairs them', () => {
  // A copy of exactly what generation reads, with the installed tools linked in.
  for (const path of ['proto', 'buf.yaml', 'buf.gen.yaml', 'scripts/gen-proto.mjs', GEN]) {
    cpSync(join(root, path), join(scratch, path), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
  assert.equal(genProto(scratch, '--check').status, 0, 'the copy starts out current');

  appendFileSync(join(scratch, GEN, 'ferry/v1/events.ts'), '\n// edited by hand\n');
  rmSync(join(scratch, GEN, 'ferry/v1/common.ts'));
  writeFileSync(join(scratch, GEN, 'ferry/v1/removed.ts'), 'export {};\n');

  const drift = genProto(scratch, '--check');
  assert.equal(drift.status, 1, drift.output);
  assert.match(drift.output, /changed: ferry\/v1\/events\.ts/);
  assert.match(drift.output, /missing: ferry\/v1\/common\.ts/);
  assert.match(drift.output, /stale: +ferry\/v1\/removed\.ts/);
  assert.doesNotMatch(drift.output, /host_agent\.ts/, 'untouched files are not listed');

  const regenerate = genProto(scratch);
  assert.equal(regenerate.status, 0, regenerate.output);
  const again = genProto(scratch, '--check');
  assert.equal(again.status, 0, again.output);

  // A proto change the committed code does not reflect is drift too.
  appendFileSync(join(scratch, 'proto/ferry/v1/common.proto'), '\n// A message added without regenerating.\nmessage Added {}\n');
  const protoDrift = genProto(scratch, '--check');
  assert.equal(protoDrift.status, 1, protoDrift.output);
  assert.match(protoDrift.output, /changed: ferry\/v1\/common\.ts/);
});

test('gen-proto rejects unknown arguments', () => {
  const { status, output } = genProto(root, '--chek');
  assert.equal(status, 2);
  assert.match(output, /unknown argument/);
});
