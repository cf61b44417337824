// The rendered NetworkPolicies let through exactly the paths of DESIGN.md: clients → coordinator,
// coordinator → per-host services, page-streamer ↔ page-streamer, Ferry's processes → NATS and
// the OTLP endpoint, every pod → cluster DNS; plus Prometheus → the metrics ports and, with
// emulated hosts only, clients → the kv guests inside them. Every pair of pods is tried on every
// port the destination listens on.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { allContainers, find, podTemplates, renderKustomization, type K8sObject } from './support/k8s-objects';
import { PolicySet, type Endpoint } from './support/network-policy';
import { findKustomizer } from './support/tools';

/** A port in Linux's ephemeral range, where an emulated kv guest's listener lands. */
const GUEST_PORT = 45000;

const rendered = new Map<string, K8sObject[]>();

before(() => {
  const kustomizer = findKustomizer();
  for (const k of ['k8s/overlays/emulated', 'k8s/overlays/xen', 'k8s/demo']) rendered.set(k, renderKustomization(kustomizer, k));
});

function endpoints(objects: K8sObject[], emulatedGuests: boolean): Endpoint[] {
  const ns = find(objects, 'Namespace', 'ferry');
  const nsLabels = { ...ns.metadata.labels, 'kubernetes.io/metadata.name': 'ferry' };
  const pods: Endpoint[] = podTemplates(objects).map((p) => {
    const ports = allContainers(p.spec).flatMap((c) => (c.ports ?? []).map((cp) => ({ port: cp.containerPort, protocol: (cp.protocol ?? 'TCP') as 'TCP' | 'UDP', name: cp.name })));
    if (emulatedGuests && p.owner.metadata.name === 'ferry-host') ports.push({ port: GUEST_PORT, protocol: 'TCP', name: undefined });
    return { name: p.owner.metadata.name, namespace: 'ferry', namespaceLabels: nsLabels, labels: p.labels, ports };
  });
  const elsewhere = { namespace: 'tools', namespaceLabels: { 'kubernetes.io/metadata.name': 'tools' }, ports: [] };
  return [
    ...pods,
    { name: 'client-elsewhere', labels: { 'ferry.io/client': 'true' }, ...elsewhere },
    { name: 'prometheus-elsewhere', labels: { 'ferry.io/metrics-scraper': 'true' }, ...elsewhere },
    { name: 'stranger-elsewhere', labels: { app: 'other' }, ...elsewhere },
    { name: 'toolbox-in-ferry', namespace: 'ferry', namespaceLabels: nsLabels, labels: { 'ferry.io/client': 'true' }, ports: [] },
    { name: 'stranger-in-ferry', namespace: 'ferry', namespaceLabels: nsLabels, labels: { app: 'other' }, ports: [] },
    {
      name: 'kube-dns',
      namespace: 'kube-system',
      namespaceLabels: { 'kubernetes.io/metadata.name': 'kube-system' },
      labels: { 'k8s-app': 'kube-dns' },
      ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
    },
  ];
}

/** The design's paths, spelled out. */
function designPaths(podsInFerry: string[], opts: { emulatedGuests: boolean; clients: string[] }): string[] {
  const paths: string[] = [];
  const tcp = (from: string, to: string, ...ports: number[]) => ports.forEach((p) => paths.push(`${from} -> ${to}:${p}/TCP`));
  for (const client of opts.clients) tcp(client, 'ferry-coordinator', 7000);
  tcp('ferry-coordinator', 'ferry-host', 7001, 7002, 7003, 7004);
  tcp('prometheus-elsewhere', 'ferry-coordinator', 9460);
  tcp('prometheus-elsewhere', 'ferry-host', 9461, 9462, 9463, 9464);
  tcp('ferry-host', 'ferry-host', 7005);
  for (const ferry of ['ferry-coordinator', 'ferry-host']) {
    tcp(ferry, 'ferry-nats', 4222);
    tcp(ferry, 'ferry-jaeger', 4317, 4318);
  }
  for (const pod of podsInFerry) paths.push(`${pod} -> kube-dns:53/TCP`, `${pod} -> kube-dns:53/UDP`);
  if (opts.emulatedGuests) for (const client of opts.clients) tcp(client, 'ferry-host', GUEST_PORT);
  return paths.sort();
}

function allowedPathsTouchingFerry(objects: K8sObject[], emulatedGuests: boolean): { allowed: string[]; inFerry: string[] } {
  const eps = endpoints(objects, emulatedGuests);
  const inFerry = eps.filter((e) => e.namespace === 'ferry').map((e) => e.name);
  const allowed = new PolicySet(objects)
    .allowedPaths(eps)
    .filter((p) => inFerry.some((n) => p.startsWith(`${n} -> `) || p.includes(` -> ${n}:`)));
  return { allowed, inFerry };
}

test('xen: the network policies allow exactly the design\'s paths', () => {
  const objects = rendered.get('k8s/overlays/xen')!;
  const { allowed, inFerry } = allowedPathsTouchingFerry(objects, false);
  assert.deepEqual(allowed, designPaths(inFerry, { emulatedGuests: false, clients: ['client-elsewhere', 'toolbox-in-ferry'] }));
});

test('emulated, with the demo Job: the same paths, plus clients to the kv guests', () => {
  const objects = [...rendered.get('k8s/overlays/emulated')!, ...rendered.get('k8s/demo')!];
  const { allowed, inFerry } = allowedPathsTouchingFerry(objects, true);
  assert.ok(inFerry.includes('ferry-demo'));
  assert.deepEqual(allowed, designPaths(inFerry, { emulatedGuests: true, clients: ['client-elsewhere', 'ferry-demo', 'toolbox-in-ferry'] }));
});

test('the policy evaluator itself: default deny, pod and namespace selectors, port ranges', () => {
  const policy = (name: string, spec: unknown): K8sObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'a' }, spec });
  const ep = (name: string, namespace: string, labels: Record<string, string>, ports: number[] = []): Endpoint => ({
    name,
    namespace,
    namespaceLabels: { 'kubernetes.io/metadata.name': namespace },
    labels,
    ports: ports.map((port) => ({ port, protocol: 'TCP' as const })),
  });
  const server = ep('server', 'a', { role: 'server' }, [80, 81, 90]);
  const friend = ep('friend', 'b', { role: 'friend' });
  const local = ep('local', 'a', { role: 'friend' });
  const open = new PolicySet([]);
  assert.ok(open.allows(friend, server, 90, 'TCP'), 'no policy: open');
  const set = new PolicySet([
    policy('deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('server-in', {
      podSelector: { matchLabels: { role: 'server' } },
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'friend' } } }], ports: [{ port: 80, endPort: 81 }] }],
    }),
    policy('local-out', { podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['friend'] }] }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: {} }] }] }),
  ]);
  assert.ok(set.allows(friend, server, 81, 'TCP'), 'any namespace, port range');
  assert.ok(!set.allows(friend, server, 90, 'TCP'), 'port outside the range');
  assert.ok(!set.allows(friend, server, 80, 'UDP'), 'protocol');
  assert.ok(set.allows(local, server, 80, 'TCP'), 'egress to pods of its own namespace');
  assert.ok(!set.allows(server, local, 80, 'TCP'), 'default deny');
});
