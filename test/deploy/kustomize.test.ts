// k8s/: every kustomization renders offline, every object validates against the Kubernetes
// schemas (unknown fields included), and what the manifests say agrees with the code: the files
// the containers run, the ports the services listen on, the settings they read, and exactly the
// host access each overlay grants.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { SERVICE_NODE_FLAGS } from '@ferry/runtime';
import { entryFileOf, grpcServiceOf, processReadsEnv } from './support/code-facts';
import { isIgnored } from './support/dockerignore';
import {
  allContainers,
  configMapData,
  containerOf,
  describe as name,
  envValue,
  find,
  hostOf,
  labelsMatch,
  podOf,
  podTemplates,
  portOf,
  renderKustomization,
  type Container,
  type K8sObject,
  type PodTemplate,
} from './support/k8s-objects';
import { fieldProblems, schemaProblems } from './support/k8s-schema';
import { repoFileExists } from './support/repo';
import { findKustomizer, kubernetesModelsDir } from './support/tools';

const KUSTOMIZATIONS = ['k8s/base', 'k8s/overlays/emulated', 'k8s/overlays/xen', 'k8s/demo'];
const HOST_SERVICES = ['host-agent', 'memory-tracker', 'balloon-manager', 'page-streamer'];

const rendered = new Map<string, K8sObject[]>();
const objectsOf = (k: string): K8sObject[] => {
  const objects = rendered.get(k);
  if (!objects) throw new Error(`${k} was not rendered`);
  return objects;
};
/** What is applied to a cluster: an overlay (the demo Job goes with the emulated one). */
const DEPLOYMENTS: Record<string, () => K8sObject[]> = {
  emulated: () => [...objectsOf('k8s/overlays/emulated'), ...objectsOf('k8s/demo')],
  xen: () => objectsOf('k8s/overlays/xen'),
};

function ferryContainers(objects: K8sObject[]): { pod: PodTemplate; container: Container; entry: string }[] {
  const out: { pod: PodTemplate; container: Container; entry: string }[] = [];
  for (const pod of podTemplates(objects)) {
    for (const container of allContainers(pod.spec)) {
      if (!/^ferry(:|$)/.test(container.image)) continue;
      const entry = entryFileOf(container.command ?? []);
      assert.ok(entry, `${name(pod.owner)}/${container.name} runs the ferry image without a node command`);
      out.push({ pod, container, entry });
    }
  }
  return out;
}

/** The ferry.v1 services' containers of a deployment: those running services/<name>/src/main.ts. */
function grpcContainers(objects: K8sObject[]) {
  return ferryContainers(objects).filter((c) => /^services\/[^/]+\/src\/main\.ts$/.test(c.entry));
}

before(() => {
  const kustomizer = findKustomizer();
  console.log(`# rendering with ${kustomizer.describe}`);
  for (const k of KUSTOMIZATIONS) rendered.set(k, renderKustomization(kustomizer, k));
});

describe('k8s/ renders and validates offline', () => {
  test('every kustomization renders', () => {
    for (const k of KUSTOMIZATIONS) assert.ok(objectsOf(k).length > 0, `${k} rendered no object`);
    const kinds = new Set(objectsOf('k8s/overlays/xen').map((o) => o.kind));
    for (const kind of ['Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget', 'DaemonSet', 'StatefulSet', 'NetworkPolicy']) {
      assert.ok(kinds.has(kind), `the xen overlay has no ${kind}`);
    }
  });

  test('every object validates against the Kubernetes schemas', () => {
    const dir = kubernetesModelsDir();
    const problems = KUSTOMIZATIONS.flatMap((k) => schemaProblems(dir, objectsOf(k)).map((p) => `${k}: ${p}`));
    assert.deepEqual(problems, []);
  });

  test('no object has a field the Kubernetes API does not know', () => {
    const dir = kubernetesModelsDir();
    const problems = KUSTOMIZATIONS.flatMap((k) => fieldProblems(dir, objectsOf(k)).map((p) => `${k}: ${p}`));
    assert.deepEqual(problems, []);
  });

  test('objects keep the API rules the schemas do not express', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      const objects = objectsFn();
      const where = (s: string) => `${deployment}: ${s}`;
      const names = new Set<string>();
      for (const o of objects) {
        if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'ferry', where(`${name(o)} is not in namespace ferry`));
        assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, where(`${name(o)} is not a DNS-1123 name`));
        assert.ok(o.metadata.name.length <= (o.kind === 'Service' ? 63 : 253), where(`${name(o)}: name too long`));
        assert.ok(!names.has(name(o)), where(`${name(o)} is defined twice`));
        names.add(name(o));
      }
      const has = (kind: string, n: string) => objects.some((o) => o.kind === kind && o.metadata.name === n);
      for (const pod of podTemplates(objects)) {
        const owner = name(pod.owner);
        const selector = (pod.owner.spec as { selector?: { matchLabels?: Record<string, string> } }).selector;
        if (pod.owner.kind !== 'Job') assert.ok(labelsMatch(selector?.matchLabels, pod.labels) && selector?.matchLabels, where(`${owner}: selector does not match its pod labels`));
        if (pod.spec.serviceAccountName) assert.ok(has('ServiceAccount', pod.spec.serviceAccountName), where(`${owner}: no ServiceAccount ${pod.spec.serviceAccountName}`));
        const containers = allContainers(pod.spec);
        const containerNames = containers.map((c) => c.name);
        assert.equal(new Set(containerNames).size, containerNames.length, where(`${owner}: container names repeat`));
        const portNames = containers.flatMap((c) => (c.ports ?? []).map((p) => p.name).filter((n): n is string => !!n));
        assert.equal(new Set(portNames).size, portNames.length, where(`${owner}: port names repeat across containers (${portNames})`));
        for (const p of portNames) assert.match(p, /^(?=.*[a-z])[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/, where(`${owner}: port name "${p}" is not an IANA service name`));
        const claims = (pod.owner.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? [];
        const volumes = new Set([...(pod.spec.volumes ?? []).map((v) => v.name), ...claims.map((t) => t.metadata.name)]);
        for (const c of containers) {
          for (const m of c.volumeMounts ?? []) assert.ok(volumes.has(m.name), where(`${owner}/${c.name} mounts missing volume ${m.name}`));
          for (const f of c.envFrom ?? []) if (f.configMapRef) assert.ok(has('ConfigMap', f.configMapRef.name), where(`${owner}/${c.name}: no ConfigMap ${f.configMapRef.name}`));
          const defined: string[] = [];
          for (const e of c.env ?? []) {
            for (const ref of (e.value ?? '').matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)) assert.ok(defined.includes(ref[1]), where(`${owner}/${c.name}: ${e.name} uses $(${ref[1]}) before it is defined`));
            defined.push(e.name);
          }
          for (const arg of [...(c.command ?? []), ...(c.args ?? [])]) {
            for (const ref of arg.matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)) assert.ok(defined.includes(ref[1]), where(`${owner}/${c.name}: command uses undefined $(${ref[1]})`));
          }
          if (c.securityContext?.privileged) assert.notEqual(c.securityContext.allowPrivilegeEscalation, false, where(`${owner}/${c.name}: privileged with allowPrivilegeEscalation false is refused`));
        }
      }
      for (const svc of objects.filter((o) => o.kind === 'Service')) {
        const spec = svc.spec as { selector: Record<string, string>; ports: { port: number; targetPort?: number | string }[] };
        const pods = podTemplates(objects).filter((p) => labelsMatch(spec.selector, p.labels));
        assert.ok(pods.length > 0, where(`${name(svc)} selects no pod`));
        for (const port of spec.ports) {
          const target = port.targetPort ?? port.port;
          const served = pods.every((p) => allContainers(p.spec).some((c) => (c.ports ?? []).some((cp) => cp.name === target || cp.containerPort === target)));
          assert.ok(served, where(`${name(svc)} port ${port.port} → ${target}: no container port`));
        }
      }
      for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
        const selector = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
        assert.ok(podTemplates(objects).some((p) => labelsMatch(selector, p.labels)), where(`${name(pdb)} selects no pod`));
      }
    }
  });
});

describe('k8s/ agrees with the code', () => {
  test('every Ferry container runs a file of the repository that the image contains', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      for (const { pod, container, entry } of ferryContainers(objectsFn())) {
        const what = `${deployment}: ${name(pod.owner)}/${container.name} runs ${entry}`;
        assert.ok(repoFileExists(entry), `${what}, which does not exist`);
        assert.ok(!isIgnored(entry), `${what}, which .dockerignore leaves out of the image`);
        const expected = entry === 'bin/ferry.js' ? ['node', 'bin/ferry.js', container.command?.[2]] : ['node', ...SERVICE_NODE_FLAGS, '--import', 'tsx'];
        assert.deepEqual(container.command?.slice(0, expected.length), expected, `${what} with the flags of libs/runtime node-flags.ts`);
      }
    }
  });

  test('each gRPC service listens where its ports, probes and peers say', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      const objects = objectsFn();
      for (const { pod, container, entry } of grpcContainers(objects)) {
        const what = `${deployment}: ${name(pod.owner)}/${container.name}`;
        const listen = envValue(container, 'FERRY_LISTEN');
        assert.ok(listen, `${what} sets no FERRY_LISTEN (the default 127.0.0.1:0 is unreachable)`);
        const port = portOf(listen);
        assert.ok(container.ports?.some((p) => p.containerPort === port), `${what} listens on ${port} but declares no such containerPort`);
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
          assert.equal(container[probe]?.grpc?.port, port, `${what}: ${probe} is not a gRPC health check on ${port}`);
        }
        assert.equal(container.readinessProbe?.grpc?.service, grpcServiceOf(entry), `${what}: readiness should ask for the service it serves`);
        const metrics = envValue(container, 'FERRY_METRICS_LISTEN');
        assert.ok(metrics && container.ports?.some((p) => p.containerPort === portOf(metrics) && p.name?.startsWith('metrics')), `${what}: metrics port not declared as metrics*`);
        if (entry.startsWith('services/page-streamer/')) {
          const data = envValue(container, 'FERRY_DATA_LISTEN');
          assert.ok(data && container.ports?.some((p) => p.containerPort === portOf(data)), `${what}: data port not declared`);
        }
      }
      const host = podOf(objects, 'DaemonSet', 'ferry-host');
      const listenPort = (service: string) => portOf(envValue(containerOf(host, service), 'FERRY_LISTEN')!);
      const agent = containerOf(host, 'host-agent');
      assert.equal(portOf(envValue(agent, 'FERRY_MEMORY_TRACKER')!), listenPort('memory-tracker'));
      assert.equal(portOf(envValue(agent, 'FERRY_BALLOON_MANAGER')!), listenPort('balloon-manager'));
      assert.equal(portOf(envValue(agent, 'FERRY_PAGE_STREAMER')!), listenPort('page-streamer'));
      assert.equal(portOf(envValue(containerOf(host, 'page-streamer'), 'FERRY_MEMORY_TRACKER')!), listenPort('memory-tracker'));
      for (const service of HOST_SERVICES) {
        // The address a peer dials is the one registered: it must be the pod's, not a wildcard.
        assert.match(envValue(containerOf(host, service), 'FERRY_LISTEN')!, /^\$\(POD_IP\):\d+$/, `${deployment}: ${service} must listen on the pod IP`);
      }
    }
  });

  test('every setting given to a Ferry process is one its code reads', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      const objects = objectsFn();
      const readers = new Map<string, string[]>();
      for (const { pod, container, entry } of ferryContainers(objects)) {
        const interpolated = new Set((container.env ?? []).flatMap((e) => [...(e.value ?? '').matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)].map((m) => m[1])));
        for (const arg of container.command ?? []) for (const m of arg.matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)) interpolated.add(m[1]);
        for (const e of container.env ?? []) {
          assert.ok(processReadsEnv(entry, e.name) || interpolated.has(e.name), `${deployment}: ${name(pod.owner)}/${container.name} sets ${e.name}, which ${entry} never reads`);
        }
        for (const f of container.envFrom ?? []) if (f.configMapRef) readers.set(f.configMapRef.name, [...(readers.get(f.configMapRef.name) ?? []), entry]);
      }
      for (const [cm, entries] of readers) {
        for (const key of Object.keys(configMapData(objects, cm))) {
          assert.ok(entries.some((entry) => processReadsEnv(entry, key)), `${deployment}: ConfigMap ${cm} has ${key}, which none of its readers (${entries.join(', ')}) reads`);
        }
      }
    }
  });

  test('the cluster addresses in the settings name the Services that serve them', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      const objects = objectsFn();
      const common = configMapData(objects, objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('ferry-common'))!.metadata.name);
      const servicePort = (address: string) => {
        const svc = find(objects, 'Service', hostOf(address));
        return (svc.spec as { ports: { port: number; name: string }[] }).ports.find((p) => p.port === portOf(address));
      };
      assert.match(common.NATS_URL, /^nats:\/\//);
      assert.equal(servicePort(common.NATS_URL)?.name, 'client', `${deployment}: NATS_URL ${common.NATS_URL}`);
      assert.equal(common.OTEL_EXPORTER_OTLP_PROTOCOL, 'grpc');
      assert.equal(servicePort(common.OTEL_EXPORTER_OTLP_ENDPOINT)?.name, 'otlp-grpc', `${deployment}: OTLP endpoint ${common.OTEL_EXPORTER_OTLP_ENDPOINT}`);
      const demo = objects.find((o) => o.kind === 'Job');
      if (demo) {
        const c = podOf(objects, 'Job', demo.metadata.name).spec.containers[0];
        const address = c.command![c.command!.indexOf('--coordinator') + 1];
        assert.equal(servicePort(address)?.name, 'grpc', `${deployment}: the demo's coordinator ${address}`);
      }
    }
  });
});

describe('k8s/ runs Ferry as the design says', () => {
  test('every container has resource requests and limits, and health probes', () => {
    for (const [deployment, objectsFn] of Object.entries(DEPLOYMENTS)) {
      for (const pod of podTemplates(objectsFn())) {
        for (const c of allContainers(pod.spec)) {
          const what = `${deployment}: ${name(pod.owner)}/${c.name}`;
          for (const r of ['cpu', 'memory']) {
            assert.ok(c.resources?.requests?.[r], `${what}: no ${r} request`);
            assert.ok(c.resources?.limits?.[r], `${what}: no ${r} limit`);
          }
          if (pod.owner.kind !== 'Job') assert.ok(c.livenessProbe && (c.readinessProbe || c.startupProbe), `${what}: probes missing`);
        }
      }
    }
  });

  test('the coordinator: two replicas behind a Service, with a disruption budget', () => {
    for (const objectsFn of Object.values(DEPLOYMENTS)) {
      const objects = objectsFn();
      const deployment = find(objects, 'Deployment', 'ferry-coordinator');
      assert.equal((deployment.spec as { replicas: number }).replicas, 2);
      const pdb = find(objects, 'PodDisruptionBudget', 'ferry-coordinator');
      assert.equal((pdb.spec as { minAvailable: number }).minAvailable, 1);
      const svc = find(objects, 'Service', 'ferry-coordinator').spec as { ports: { port: number }[] };
      assert.deepEqual(svc.ports.map((p) => p.port), [7000]);
      assert.equal(podOf(objects, 'Deployment', 'ferry-coordinator').spec.serviceAccountName, 'ferry-coordinator');
    }
  });

  test('the per-host services run on every node labelled as a Xen host, named after it', () => {
    for (const objectsFn of Object.values(DEPLOYMENTS)) {
      const host = podOf(objectsFn(), 'DaemonSet', 'ferry-host');
      assert.deepEqual(host.spec.nodeSelector, { 'ferry.io/xen-host': 'true' });
      for (const service of HOST_SERVICES) {
        const c = containerOf(host, service);
        assert.equal(c.env?.find((e) => e.name === 'FERRY_HOST')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
      }
    }
  });

  test('NATS keeps JetStream on a persistent volume', () => {
    for (const objectsFn of Object.values(DEPLOYMENTS)) {
      const objects = objectsFn();
      const nats = find(objects, 'StatefulSet', 'ferry-nats');
      const claims = (nats.spec as { volumeClaimTemplates: { metadata: { name: string } }[] }).volumeClaimTemplates.map((t) => t.metadata.name);
      const c = podOf(objects, 'StatefulSet', 'ferry-nats').spec.containers[0];
      const args = c.args ?? [];
      assert.ok(args.includes('--jetstream'));
      const store = args[args.indexOf('--store_dir') + 1];
      assert.ok(c.volumeMounts?.some((m) => m.mountPath === store && claims.includes(m.name)), 'the JetStream store is not on the claimed volume');
    }
  });
});

describe('k8s/ grants exactly the host access each overlay needs', () => {
  const restrictedProblems = (objects: K8sObject[]): string[] => {
    const problems: string[] = [];
    for (const pod of podTemplates(objects)) {
      const s = pod.spec;
      const owner = name(pod.owner);
      if (s.hostNetwork || s.hostPID || s.hostIPC) problems.push(`${owner}: host namespaces`);
      for (const v of s.volumes ?? []) if (v.hostPath) problems.push(`${owner}: hostPath ${v.hostPath.path}`);
      if (s.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${owner}: no RuntimeDefault seccomp profile`);
      for (const c of allContainers(s)) {
        const sc = c.securityContext ?? {};
        if (sc.privileged) problems.push(`${owner}/${c.name}: privileged`);
        if (sc.allowPrivilegeEscalation !== false) problems.push(`${owner}/${c.name}: privilege escalation allowed`);
        if (!(sc.capabilities?.drop ?? []).includes('ALL') || (sc.capabilities?.add ?? []).length > 0) problems.push(`${owner}/${c.name}: capabilities not dropped`);
        if (!(sc.runAsNonRoot ?? s.securityContext?.runAsNonRoot)) problems.push(`${owner}/${c.name}: may run as root`);
        if ((sc.runAsUser ?? s.securityContext?.runAsUser) === 0) problems.push(`${owner}/${c.name}: runs as root`);
      }
    }
    return problems;
  };

  test('base and emulated: nothing privileged, every pod within Pod Security "restricted"', () => {
    for (const k of ['k8s/base', 'k8s/overlays/emulated', 'k8s/demo']) {
      assert.deepEqual(restrictedProblems(objectsOf(k)), [], k);
    }
    for (const k of ['k8s/base', 'k8s/overlays/emulated']) {
      const labels = find(objectsOf(k), 'Namespace', 'ferry').metadata.labels ?? {};
      assert.equal(labels['pod-security.kubernetes.io/enforce'], 'restricted', k);
    }
  });

  test('emulated: the emulated Xen host shares guest memory and its socket with the four services', () => {
    const objects = DEPLOYMENTS.emulated();
    const host = podOf(objects, 'DaemonSet', 'ferry-host');
    const emu = host.spec.initContainers?.find((c) => c.name === 'emu-host');
    assert.ok(emu, 'no emu-host sidecar');
    assert.equal(emu.restartPolicy, 'Always', 'the emulated host must be a sidecar (started first, stopped last)');
    assert.equal(entryFileOf(emu.command ?? []), 'libs/emu-host/src/main.ts');
    assert.ok(emu.startupProbe, 'the four services may start only once the hypercall socket exists');
    const dir = emu.command![emu.command!.indexOf('--dir') + 1];
    const socket = configMapData(objects, objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('ferry-host'))!.metadata.name).FERRY_EMU_SOCKET;
    assert.equal(socket, `${dir}/xen.sock`);
    const shm = host.spec.volumes?.find((v) => v.emptyDir?.medium === 'Memory');
    assert.ok(shm, 'no memory-backed volume for guest memory');
    for (const c of [emu, ...HOST_SERVICES.map((s) => containerOf(host, s))]) {
      assert.ok(c.volumeMounts?.some((m) => m.name === shm.name && m.mountPath === '/dev/shm'), `${c.name} does not share /dev/shm`);
      assert.ok(c.volumeMounts?.some((m) => socket.startsWith(`${m.mountPath}/`) && host.spec.volumes?.find((v) => v.name === m.name)?.emptyDir), `${c.name} does not share the socket folder`);
    }
    const capacity = emu.command![emu.command!.indexOf('--capacity') + 1];
    assert.equal(capacity, '2GiB');
    assert.equal(envValue(emu, 'FERRY_EMU_GUEST_HOST'), '$(POD_IP)', 'kv guests must listen where the demo client can reach them');
  });

  test('xen: /dev/xen and the xenstored socket, privileged only in the four per-host services', () => {
    const objects = DEPLOYMENTS.xen();
    assert.equal(find(objects, 'Namespace', 'ferry').metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(configMapData(objects, objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('ferry-host'))!.metadata.name).FERRY_DRIVER, 'xen');
    for (const pod of podTemplates(objects)) {
      const hostPaths = (pod.spec.volumes ?? []).filter((v) => v.hostPath).map((v) => v.hostPath!.path).sort();
      const privileged = allContainers(pod.spec).filter((c) => c.securityContext?.privileged).map((c) => c.name).sort();
      if (pod.owner.metadata.name === 'ferry-host') {
        assert.deepEqual(hostPaths, ['/dev/xen', '/var/run/xenstored']);
        assert.deepEqual(privileged, [...HOST_SERVICES].sort());
        assert.equal(pod.spec.initContainers, undefined, 'no emulated host on real Xen');
        for (const service of HOST_SERVICES) {
          const mounts = (containerOf(pod, service).volumeMounts ?? []).map((m) => m.mountPath);
          assert.ok(mounts.includes('/dev/xen') && mounts.includes('/var/run/xenstored'), `${service} lacks Xen access`);
          // Container runtimes refuse a mount inside /proc: the pod would never start.
          assert.ok(!mounts.some((m) => m === '/proc' || m.startsWith('/proc/')), `${service} mounts inside /proc`);
        }
        assert.ok(!pod.spec.hostNetwork && !pod.spec.hostPID && !pod.spec.hostIPC);
      } else {
        assert.deepEqual(hostPaths, [], `${name(pod.owner)} needs no host path`);
        assert.deepEqual(privileged, [], `${name(pod.owner)} needs no privileges`);
        assert.deepEqual(restrictedProblems([pod.owner]), [], `${name(pod.owner)} should stay "restricted"`);
      }
    }
  });
});
