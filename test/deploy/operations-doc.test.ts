// docs/operations.md names things that exist: the labels the manifests select on, the folders it
// applies, the ferry commands it runs, and the ports the deployments use.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMANDS } from '@ferry/cli/src/commands';
import { readRepoFile, repoFileExists } from './support/repo';

const doc = readRepoFile('docs/operations.md');
const manifests = ['k8s/base/host-daemonset.yaml', 'k8s/base/network-policies.yaml', 'k8s/overlays/emulated/guest-network-policy.yaml'].map(readRepoFile).join('\n');

test('every ferry.io/ label the manifests use is explained, and none other is named', () => {
  const used = new Set([...manifests.matchAll(/ferry\.io\/[a-z-]+/g)].map((m) => m[0]));
  const named = new Set([...doc.matchAll(/ferry\.io\/[a-z-]+/g)].map((m) => m[0]));
  assert.deepEqual([...named].sort(), [...used].sort());
});

test('the kustomizations and files it applies exist', () => {
  for (const m of doc.matchAll(/\b(k8s\/[a-z/]+[a-z]|test\/deploy\/[a-z-]+\.test\.ts|services\/README\.md|Dockerfile|docker-compose\.yml)\b/g)) {
    assert.ok(repoFileExists(m[1]), `${m[1]} does not exist`);
  }
});

test('the ferry commands it runs exist', () => {
  const names = COMMANDS.map((c) => c.name);
  for (const m of doc.matchAll(/(?:npx ferry|bin\/ferry\.js) ([a-z]+)(?: ([a-z]+))?/g)) {
    const two = `${m[1]} ${m[2] ?? ''}`.trim();
    assert.ok(names.includes(two) || names.includes(m[1]), `ferry ${m[1]} is not a command`);
  }
});

test('the ports it lists are the ones the manifests declare', () => {
  for (const port of [7000, 7001, 7004, 7005, 9460, 9461, 9464, 4222, 4317, 4318, 16686]) {
    assert.ok(doc.includes(String(port)), `port ${port} is not in the doc`);
  }
  for (const port of [7000, 7005, 9460, 9464]) {
    const declared = readRepoFile('k8s/base/coordinator.yaml') + readRepoFile('k8s/base/host-daemonset.yaml');
    assert.ok(declared.includes(`containerPort: ${port}`), `${port} is not declared in the manifests`);
  }
});
