#!/usr/bin/env node
// Runs every *.test.ts through node:test + tsx with an explicit file list (Node 20's `node --test`
// takes no globs and silently runs zero .ts files), and fails a run that executed no test.
//   node scripts/run-tests.mjs            unit tests (libs/, services/) then integration tests (test/)
//   node scripts/run-tests.mjs --unit     unit tests only
//   node scripts/run-tests.mjs FILE...    just these files
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const explicit = args.filter((a) => !a.startsWith('--'));

function findTests(dir, out = []) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const unit = [...findTests(join(root, 'libs')), ...findTests(join(root, 'services'))];
const integration = findTests(join(root, 'test'));
const files = explicit.length > 0 ? explicit : unitOnly ? unit : [...unit, ...integration];
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

const child = spawn(process.execPath, [
  '--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files,
], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } });

let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-200_000);
});
child.on('close', (code, signal) => {
  // The spec reporter prints its summary ("ℹ tests N", "ℹ pass N", ...) once, after the run;
  // failing tests' details may follow it, so take the last occurrence of each line.
  const last = (name) => Number([...tail.matchAll(new RegExp(`^ℹ ${name} (\\d+)$`, 'gm'))].at(-1)?.[1] ?? 0);
  const tests = last('tests');
  const pass = last('pass');
  const fail = last('fail');
  const skipped = last('skipped');
  console.log(`${pass} passed, ${fail} failed, ${skipped} skipped`);
  if (tests === 0) {
    console.error('run-tests: the run executed no test; that is a failure');
    process.exit(1);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
