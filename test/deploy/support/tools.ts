// The offline tools the deployment tests stand on. A missing one fails the test with what to
// install: these tests exist because no Docker engine or Kubernetes cluster is here to try the
// files on, so skipping them would leave the files untested.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { REPO_ROOT } from './repo';

export class MissingTool extends Error {}

export function run(cmd: string, args: string[], cwd = REPO_ROOT): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.error ? String(r.error) : (r.stderr ?? '') };
}

export interface Kustomizer {
  describe: string;
  /** The rendered YAML of the kustomization in `dir`. */
  build(dir: string): string;
}

/**
 * `kubectl kustomize` with kustomize v5 (kubectl 1.27 or later), or a standalone `kustomize`.
 * Debian's own kubernetes-client (kubectl 1.20, kustomize v2) is too old for these files.
 */
export function findKustomizer(): Kustomizer {
  const kubectl = run('kubectl', ['version', '--client', '-o', 'json']);
  if (kubectl.ok) {
    const v = JSON.parse(kubectl.stdout) as { kustomizeVersion?: string; clientVersion?: { gitVersion?: string } };
    const major = Number(/^v?(\d+)/.exec(v.kustomizeVersion ?? '')?.[1] ?? 0);
    if (major >= 5) {
      return {
        describe: `kubectl ${v.clientVersion?.gitVersion} (kustomize ${v.kustomizeVersion})`,
        build(dir) {
          const r = run('kubectl', ['kustomize', dir]);
          if (!r.ok) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
          return r.stdout;
        },
      };
    }
  }
  const standalone = run('kustomize', ['version']);
  if (standalone.ok && /v?[5-9]\./.test(standalone.stdout)) {
    return {
      describe: `kustomize ${standalone.stdout.trim()}`,
      build(dir) {
        const r = run('kustomize', ['build', dir]);
        if (!r.ok) throw new Error(`kustomize build ${dir} failed:\n${r.stderr}`);
        return r.stdout;
      },
    };
  }
  throw new MissingTool(
    'kustomize v5 is needed to render k8s/ offline: install kubectl 1.27 or later (`kubectl kustomize`; on this ' +
      'machine kind it is the Debian package "kubectl" of the image, version 1:528.0.0-0 = kubectl 1.32) or a kustomize v5 ' +
      'binary on PATH. Debian bookworm\'s kubernetes-client (kubectl 1.20, kustomize v2) is too old.' +
      (kubectl.ok ? ` Found: ${kubectl.stdout.replace(/\s+/g, ' ').slice(0, 200)}` : ''),
  );
}

/**
 * kubernetes-models: classes for every built-in Kubernetes kind with validate() against the
 * API's JSON schemas, and TypeScript declarations of every field. Resolved from the repository
 * (a devDependency) or, for a trial before it is one, from the node_modules of FERRY_DEPLOY_TOOLS.
 */
export function kubernetesModelsDir(): string {
  const searched = [REPO_ROOT, ...(process.env.FERRY_DEPLOY_TOOLS ? [process.env.FERRY_DEPLOY_TOOLS] : [])];
  for (const from of searched) {
    try {
      return dirname(require.resolve('kubernetes-models/package.json', { paths: [from] }));
    } catch {
      // next
    }
  }
  throw new MissingTool(
    'the npm package kubernetes-models (Kubernetes schemas for offline validation) is not installed: ' +
      'npm install --save-dev kubernetes-models@4.5.1 ' +
      '(or point FERRY_DEPLOY_TOOLS at a folder whose node_modules has it)',
  );
}

/** Debian's docker-compose (1.29), whose `config` checks a compose file against the Compose schema without an engine. */
export function findDockerCompose(): string {
  for (const candidate of ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose']) {
    if (existsSync(candidate) && run(candidate, ['version', '--short']).ok) return candidate;
  }
  const onPath = run('docker-compose', ['version', '--short']);
  if (onPath.ok) return 'docker-compose';
  throw new MissingTool('docker-compose is needed to check docker-compose.yml against the Compose schema offline: apt-get install -y docker-compose');
}
