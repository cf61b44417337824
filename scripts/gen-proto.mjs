#!/usr/bin/env node
// Generates the TypeScript of Ferry's protobuf API (proto/ferry/v1) into libs/proto/src/gen with
// `buf generate` (buf.gen.yaml: ts-proto for @grpc/grpc-js). The output is committed.
//   node scripts/gen-proto.mjs           regenerate libs/proto/src/gen (stale files are removed)
//   node scripts/gen-proto.mjs --check   regenerate into a temporary folder and exit 1, listing
//                                        the files, if it differs from the committed output
// Both run buf into a fresh temporary folder first, so a failed generation never leaves a half
// written libs/proto/src/gen behind.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, URL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Where buf.gen.yaml puts the output, relative to the repository root. */
const GEN_DIR = 'libs/proto/src/gen';
const BUF = join(root, 'node_modules', '.bin', 'buf');
const PLUGIN = join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto');

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--check');
if (unknown.length > 0) {
  console.error(`gen-proto: unknown argument(s) ${unknown.join(' ')}; usage: node scripts/gen-proto.mjs [--check]`);
  process.exit(2);
}
const check = args.includes('--check');

for (const [what, path] of [['buf', BUF], ['protoc-gen-ts_proto (ts-proto)', PLUGIN]]) {
  if (!existsSync(path)) {
    console.error(`gen-proto: ${what} not found at ${relative(root, path)}; run npm install first`);
    process.exit(2);
  }
}

/** Runs `buf generate` with the output rooted in `outBase`; returns the generated gen folder. */
function generate(outBase) {
  const result = spawnSync(BUF, ['generate', '--output', outBase], { cwd: root, encoding: 'utf8' });
  if (result.error) throw new Error(`could not run buf: ${result.error.message}`);
  if (result.status !== 0) {
    process.stderr.write(result.stderr);
    throw new Error(`buf generate failed (exit ${result.status ?? result.signal})`);
  }
  const out = join(outBase, GEN_DIR);
  if (!existsSync(out)) throw new Error(`buf generate produced no ${GEN_DIR}; check buf.gen.yaml's out:`);
  return out;
}

/** Every file under `dir`, as sorted paths relative to it. */
function listFiles(dir, base = dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) listFiles(p, base, out);
    else out.push(relative(base, p));
  }
  return out.sort();
}

/** Differences between the committed tree and a fresh one, as "changed|missing|stale: path" lines. */
function compareTrees(committed, fresh) {
  const have = new Set(listFiles(committed));
  const want = new Set(listFiles(fresh));
  const diffs = [];
  for (const file of want) {
    if (!have.has(file)) diffs.push(`missing: ${file}`);
    else if (!readFileSync(join(committed, file)).equals(readFileSync(join(fresh, file)))) diffs.push(`changed: ${file}`);
  }
  for (const file of have) if (!want.has(file)) diffs.push(`stale:   ${file}`);
  return diffs.sort((a, b) => a.slice(9).localeCompare(b.slice(9)));
}

const tmp = mkdtempSync(join(tmpdir(), 'ferry-gen-proto-'));
let exitCode = 0;
try {
  const fresh = generate(tmp);
  const committed = join(root, GEN_DIR);
  if (check) {
    const diffs = compareTrees(committed, fresh);
    if (diffs.length > 0) {
      console.error(`gen-proto: ${GEN_DIR} is out of date with proto/ (${diffs.length} file(s)):`);
      for (const line of diffs) console.error(`  ${line}`);
      console.error('gen-proto: run `npm run gen` and commit the result');
      exitCode = 1;
    } else {
      console.log(`gen-proto: ${GEN_DIR} is up to date (${listFiles(fresh).length} files)`);
    }
  } else {
    rmSync(committed, { recursive: true, force: true });
    cpSync(fresh, committed, { recursive: true });
    console.log(`gen-proto: wrote ${listFiles(committed).length} files to ${GEN_DIR}`);
  }
} catch (err) {
  console.error(`gen-proto: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(exitCode);
