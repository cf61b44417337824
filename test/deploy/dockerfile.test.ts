// The Dockerfile and .dockerignore, read as data (no Docker engine here to build with): one image
// in two stages, the native addons built where libxen-dev is, non-root at run time, and a build
// context that holds everything the processes load and nothing of the machine's own builds.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { entryFileOf } from './support/code-facts';
import { ferryServices, loadCompose } from './support/compose';
import { IMAGE_UID } from './support/compose-runner';
import { isIgnored } from './support/dockerignore';
import { readRepoFile, repoFileExists, repoPath } from './support/repo';

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Instructions with line continuations joined and comments dropped; stage = index of the FROM above. */
function dockerfile(): Instruction[] {
  const joined = readRepoFile('Dockerfile')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  let stage = -1;
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      if (keyword.toUpperCase() === 'FROM') stage++;
      return { keyword: keyword.toUpperCase(), args: rest.join(' '), stage };
    });
}

const instructions = dockerfile();
const stages = instructions.filter((i) => i.keyword === 'FROM');
const runtime = stages.length - 1;
const inStage = (stage: number, keyword: string) => instructions.filter((i) => i.stage === stage && i.keyword === keyword);

test('two stages from Debian (bookworm) Node 20 images: build with libxen-dev, run without compilers', () => {
  assert.equal(stages.length, 2);
  const nodeImage = /ARG NODE_IMAGE=(\S+)/.exec(readRepoFile('Dockerfile'))?.[1];
  assert.equal(nodeImage, 'node:20-bookworm');
  assert.match(stages[0].args, /^\$\{NODE_IMAGE\} AS build$/);
  assert.match(stages[1].args, /^\$\{NODE_IMAGE\}-slim AS runtime$/);
  const buildRuns = inStage(0, 'RUN').map((i) => i.args).join('\n');
  assert.match(buildRuns, /apt-get install[^\n]*\blibxen-dev\b/, 'the build stage has the Xen headers');
  assert.match(buildRuns, /npm ci\b/);
  assert.match(buildRuns, /binding\.gyp[^\n]*build\/Release\/\*\.node/, 'the build fails when an addon did not build');
  assert.match(buildRuns, /npm prune --omit=dev/);
  assert.match(buildRuns, /require\.resolve\('tsx'\)/, 'tsx must be in the image: services run from source');
  const runtimeRuns = inStage(runtime, 'RUN').map((i) => i.args).join('\n');
  assert.doesNotMatch(runtimeRuns, /libxen-dev|build-essential|g\+\+/, 'no compilers or headers at run time');
  assert.match(runtimeRuns, /libxenmisc4\.17/, 'the runtime libraries the Xen addon links against');
  assert.deepEqual(inStage(runtime, 'COPY').map((i) => i.args), ['--from=build /opt/ferry /opt/ferry']);
});

test('the image runs as the non-root user every emulated deployment expects, in /opt/ferry, under tini', () => {
  assert.deepEqual(inStage(runtime, 'USER').map((i) => i.args), [`${IMAGE_UID}:${IMAGE_UID}`]);
  assert.match(inStage(runtime, 'RUN').map((i) => i.args).join('\n'), new RegExp(`useradd[^\\n]*--uid ${IMAGE_UID}`));
  assert.deepEqual(inStage(runtime, 'WORKDIR').map((i) => i.args), ['/opt/ferry']);
  assert.deepEqual(inStage(runtime, 'ENTRYPOINT').map((i) => i.args), ['["/usr/bin/tini", "--"]']);
  // A named volume mounted at /run/ferry starts as a copy of the image's folder: it must be the user's.
  assert.match(inStage(runtime, 'RUN').map((i) => i.args).join('\n'), /mkdir -p \/run\/ferry && chown ferry:ferry \/run\/ferry/);
  for (const [name, s] of ferryServices(loadCompose())) {
    for (const arg of [...(s.command ?? []), ...(s.healthcheck?.test ?? [])]) {
      if (arg.startsWith('/opt/')) assert.ok(arg.startsWith('/opt/ferry/') && repoFileExists(arg.slice('/opt/ferry/'.length)), `${name}: ${arg} is not in the image`);
    }
  }
});

test('every port the deployments use is exposed', () => {
  const exposed = new Set(inStage(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number));
  for (const port of [7000, 7001, 7002, 7003, 7004, 7005, 9460, 9461, 9462, 9463, 9464]) assert.ok(exposed.has(port), `port ${port} is not exposed`);
});

test('.dockerignore keeps out local builds and state, and keeps in what the processes load', () => {
  for (const out of ['node_modules', 'libs/shm/node_modules', 'libs/shm/build', 'libs/shm/build/Release/ferry_shm.node', '.git', 'dist', '.ferry', 'bench-out', 'libs/sim/sweep.tmp.ts', 'test/xen-qemu']) {
    assert.ok(isIgnored(out), `${out} would be sent to the build`);
  }
  const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.base.json', 'bin/ferry.js', 'proto/ferry/v1/migration_service.proto', 'libs/shm/binding.gyp'];
  for (const parent of ['libs', 'services']) {
    for (const name of readdirSync(repoPath(parent))) {
      if (repoFileExists(`${parent}/${name}/package.json`)) needed.push(`${parent}/${name}/package.json`, `${parent}/${name}/src/index.ts`);
    }
  }
  for (const [, s] of ferryServices(loadCompose())) needed.push(entryFileOf(s.command!)!);
  for (const path of needed) {
    if (repoFileExists(path)) assert.ok(!isIgnored(path), `${path} is needed in the image but .dockerignore leaves it out`);
  }
  const lock = JSON.parse(readRepoFile('package-lock.json')) as { packages: Record<string, { version?: string }> };
  assert.ok(lock.packages['node_modules/tsx']?.version, 'the Dockerfile installs the lockfile\'s tsx version');
});
