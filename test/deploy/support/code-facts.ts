// Facts about Ferry's code that deployment files must agree with, read from the sources
// themselves: which environment variables a process can read, which gRPC service it serves, and
// which workspace packages its entry point pulls in.
//
// A process's code is taken at package level: the package of its entry file and every workspace
// package (@ferry/*) reachable through the imports of their src/ folders. Environment reads are
// the forms the code uses: process.env.X, process.env['X'], env.X (a ProcessEnv parameter) and
// the runtime helpers env('X') / envInt('X').

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT, repoPath } from './repo';

const ENV_READ = /(?:process\.env|\benv)\s*(?:\.\s*([A-Z][A-Z0-9_]*)|\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\])|\benv[A-Z][A-Za-z]*\(\s*['"]([A-Z][A-Z0-9_]*)['"]|\benv\(\s*['"]([A-Z][A-Z0-9_]*)['"]|\b(?:setting|listSetting)\(\s*env\s*,\s*['"]([A-Z][A-Z0-9_]*)['"]/g;
const IMPORT_SPEC = /(?:\bfrom\s*|\brequire\s*\(\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

export interface ProcessCode {
  /** Workspace package folders, relative to the repository (e.g. "libs/runtime"). */
  packages: string[];
  /** Environment variable names read anywhere in those packages' sources. */
  envReads: Set<string>;
  /** npm packages (outside the workspace) those sources import. */
  externalPackages: Set<string>;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') && !name.endsWith('.tmp.ts')) out.push(p);
  }
  return out;
}

/** libs/<name> or services/<name> for "@ferry/<name>[/...]". */
function workspaceFolder(specifier: string): string | undefined {
  const name = specifier.split('/')[1];
  for (const parent of ['libs', 'services']) {
    if (existsSync(repoPath(parent, name, 'package.json'))) return `${parent}/${name}`;
  }
  return undefined;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** The package folder an entry file belongs to: "services/host-agent/src/main.ts" → "services/host-agent". */
export function packageOfEntry(entry: string): string {
  const parts = entry.split('/');
  if ((parts[0] === 'libs' || parts[0] === 'services') && parts.length > 2) return parts.slice(0, 2).join('/');
  if (parts[0] === 'bin') return 'libs/cli'; // bin/ferry.js loads the CLI
  throw new Error(`${entry} is not in a workspace package`);
}

const cache = new Map<string, ProcessCode>();

/** What the process started from `entry` (a repository path) can read and import. */
export function processCode(entry: string): ProcessCode {
  const start = packageOfEntry(entry);
  const cached = cache.get(start);
  if (cached) return cached;
  const packages: string[] = [];
  const envReads = new Set<string>();
  const externalPackages = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    const pkg = queue.shift()!;
    if (packages.includes(pkg)) continue;
    packages.push(pkg);
    const files = sourceFiles(repoPath(pkg, 'src'));
    if (pkg === 'libs/cli') files.push(repoPath('bin', 'ferry.js'));
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(ENV_READ)) envReads.add((m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5])!);
      for (const m of text.matchAll(IMPORT_SPEC)) {
        const spec = m[1];
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        if (spec.startsWith('@ferry/')) {
          const folder = workspaceFolder(spec);
          if (folder) queue.push(folder);
        } else {
          externalPackages.add(packageName(spec));
        }
      }
    }
  }
  const code = { packages, envReads, externalPackages };
  cache.set(start, code);
  return code;
}

let otelNames: Set<string> | undefined;

/**
 * The OTEL_* variables OpenTelemetry's own packages read (the SDK configures exporters and
 * resources from them; Ferry's code passes them through).
 */
export function openTelemetryEnvNames(): Set<string> {
  if (otelNames) return otelNames;
  const names = new Set<string>();
  const root = repoPath('node_modules', '@opentelemetry');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'esm' && name !== 'esnext' && name !== 'test') walk(p);
      } else if (name.endsWith('.js')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/\bOTEL_[A-Z0-9_]+\b/g)) names.add(m[0]);
      }
    }
  };
  walk(root);
  otelNames = names;
  return names;
}

/**
 * Whether the process started from `entry` reads the variable `name`: in its own code, or, for an
 * OTEL_* name, through an OpenTelemetry SDK it starts.
 */
export function processReadsEnv(entry: string, name: string): boolean {
  const code = processCode(entry);
  if (code.envReads.has(name)) return true;
  const startsSdk = code.externalPackages.has('@opentelemetry/sdk-trace-node');
  return name.startsWith('OTEL_') && startsSdk && openTelemetryEnvNames().has(name);
}

/** The ferry.v1 service a services/<name> process serves, from its sources. */
export function grpcServiceOf(entry: string): string {
  const pkg = packageOfEntry(entry);
  const names = new Set<string>();
  for (const file of sourceFiles(repoPath(pkg, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/['"](ferry\.v1\.[A-Za-z]+Service)['"]/g)) names.add(m[1]);
  }
  if (names.size !== 1) throw new Error(`${pkg} names ${names.size} ferry.v1 services (${[...names].join(', ')}); expected one`);
  return [...names][0];
}

/** The file a `node …` command runs, relative to the repository, or undefined if it runs none. */
export function entryFileOf(command: string[]): string | undefined {
  if (command[0] !== 'node') return undefined;
  let i = 1;
  while (i < command.length && command[i].startsWith('-')) i += command[i] === '--import' ? 2 : 1;
  return command[i];
}

export function isRepoRelative(path: string): boolean {
  return !path.startsWith('/') && !relative(REPO_ROOT, repoPath(path)).startsWith('..');
}
