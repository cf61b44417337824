// docker-compose.yml: valid Compose, and consistent with the code — the files its commands run
// exist in the image, every variable it sets is read by the process it is set for, ports and
// addresses agree between listeners, health checks and peers, and each emulated host shares
// guest memory and its socket with exactly its four services.

import { SERVICE_NODE_FLAGS } from '@ferry/runtime';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryFileOf, grpcServiceOf, processReadsEnv } from './support/code-facts';
import { argAfter, ferryServices, loadCompose, networkOwner, sizeBytes, type ComposeService } from './support/compose';
import { isIgnored } from './support/dockerignore';
import { hostOf, portOf } from './support/k8s-objects';
import { repoFileExists } from './support/repo';
import { findDockerCompose, run } from './support/tools';

const compose = loadCompose();
const HOST_SERVICES = ['host-agent', 'memory-tracker', 'balloon-manager', 'page-streamer'];
const emulatedHosts = ferryServices(compose).filter(([, s]) => entryFileOf(s.command ?? []) === 'libs/emu-host/src/main.ts');
const grpcServices = ferryServices(compose).filter(([, s]) => /^services\/[^/]+\/src\/main\.ts$/.test(entryFileOf(s.command ?? []) ?? ''));

function env(s: ComposeService, name: string): string {
  const v = s.environment?.[name];
  assert.ok(v, `${name} is not set`);
  return v;
}

/** The per-host services of an emulated host, by the service each runs. */
function servicesOf(host: string): Record<string, ComposeService> {
  const out: Record<string, ComposeService> = {};
  for (const [name, s] of grpcServices) {
    if (networkOwner(compose, name) === host) out[entryFileOf(s.command!)!.split('/')[1]] = s;
  }
  return out;
}

test('docker-compose.yml is valid Compose (checked by docker-compose, offline)', () => {
  const dockerCompose = findDockerCompose();
  const r = run(dockerCompose, ['--file', 'docker-compose.yml', '--profile', 'demo', 'config', '--quiet']);
  assert.ok(r.ok, r.stderr);
});

test('the cluster: NATS with JetStream, Jaeger with OTLP, a coordinator, two emulated hosts with four services each, and the demo', () => {
  assert.ok(compose.services.nats.command?.includes('--jetstream'));
  const store = argAfter(compose.services.nats.command!, '--store_dir');
  assert.ok(compose.services.nats.volumes?.some((v) => v.endsWith(`:${store}`)), 'JetStream\'s store is not on a volume');
  assert.equal(compose.services.jaeger.environment?.COLLECTOR_OTLP_ENABLED, 'true');
  assert.ok(compose.services.jaeger.ports?.some((p) => p.endsWith(':16686')), 'Jaeger\'s UI is not published');
  assert.equal(grpcServices.filter(([, s]) => entryFileOf(s.command!) === 'services/migration-coordinator/src/main.ts').length, 1);
  assert.deepEqual(emulatedHosts.map(([n]) => n), ['host-1', 'host-2']);
  for (const [host] of emulatedHosts) assert.deepEqual(Object.keys(servicesOf(host)).sort(), [...HOST_SERVICES].sort(), host);
  const demo = compose.services.demo;
  assert.deepEqual(demo.profiles, ['demo']);
  assert.deepEqual(demo.command?.slice(0, 3), ['node', 'bin/ferry.js', 'demo']);
});

test('every Ferry container runs a file of the repository that the image contains', () => {
  const images = new Set(ferryServices(compose).map(([, s]) => s.image));
  assert.equal(images.size, 1, `one image for every process, not ${[...images].join(', ')}`);
  for (const [name, s] of ferryServices(compose)) {
    const entry = entryFileOf(s.command ?? []);
    assert.ok(entry, `${name} runs no node entry file`);
    assert.ok(repoFileExists(entry), `${name} runs ${entry}, which does not exist`);
    assert.ok(!isIgnored(entry), `${name} runs ${entry}, which .dockerignore leaves out of the image`);
    if (entry !== 'bin/ferry.js') {
      const expected = ['node', ...SERVICE_NODE_FLAGS, '--import', 'tsx', entry];
      assert.deepEqual(s.command?.slice(0, expected.length), expected, `${name} runs with the flags of libs/runtime node-flags.ts`);
    }
  }
});

test('every variable a service sets is one its process reads', () => {
  for (const [name, s] of ferryServices(compose)) {
    const entry = entryFileOf(s.command!)!;
    for (const variable of Object.keys(s.environment ?? {})) {
      assert.ok(processReadsEnv(entry, variable), `${name} sets ${variable}, which ${entry} never reads`);
    }
  }
});

test('every gRPC service listens on its host\'s name, at the port its health check and its peers use', () => {
  for (const [name, s] of grpcServices) {
    const entry = entryFileOf(s.command!)!;
    const listen = env(s, 'FERRY_LISTEN');
    const owner = networkOwner(compose, name);
    if (owner !== name) {
      // A per-host service registers this address in NATS: it must resolve for every peer.
      assert.equal(hostOf(listen), owner, `${name} listens on ${listen}, not on its host's name ${owner}`);
    }
    const check = s.healthcheck?.test ?? [];
    assert.deepEqual(check.slice(0, 4), ['CMD', 'node', '/opt/ferry/bin/ferry.js', 'health'], `${name}: health check`);
    assert.equal(portOf(check[4]), portOf(listen), `${name}: the health check asks another port`);
    assert.equal(argAfter(check, '--service'), grpcServiceOf(entry), `${name}: the health check names another service`);
  }
  for (const [host] of emulatedHosts) {
    const svc = servicesOf(host);
    const listen = (service: string) => env(svc[service], 'FERRY_LISTEN');
    assert.equal(env(svc['host-agent'], 'FERRY_MEMORY_TRACKER'), listen('memory-tracker'));
    assert.equal(env(svc['host-agent'], 'FERRY_BALLOON_MANAGER'), listen('balloon-manager'));
    assert.equal(env(svc['host-agent'], 'FERRY_PAGE_STREAMER'), listen('page-streamer'));
    assert.equal(env(svc['page-streamer'], 'FERRY_MEMORY_TRACKER'), listen('memory-tracker'));
    assert.equal(hostOf(env(svc['page-streamer'], 'FERRY_DATA_LISTEN')), host, 'the data endpoint is registered too');
    const ports = [
      ...HOST_SERVICES.map((x) => portOf(listen(x))),
      ...HOST_SERVICES.map((x) => portOf(env(svc[x], 'FERRY_METRICS_LISTEN'))),
      portOf(env(svc['page-streamer'], 'FERRY_DATA_LISTEN')),
    ];
    assert.equal(new Set(ports).size, ports.length, `${host}: two listeners share a port in one network namespace`);
  }
  const coordinator = grpcServices.find(([, s]) => entryFileOf(s.command!) === 'services/migration-coordinator/src/main.ts')!;
  const coordinatorPort = portOf(env(coordinator[1], 'FERRY_LISTEN'));
  assert.ok(coordinator[1].ports?.some((p) => p.endsWith(`:${coordinatorPort}`)), 'the coordinator is not published on its port');
  assert.equal(argAfter(compose.services.demo.command!, '--coordinator'), `${coordinator[0]}:${coordinatorPort}`);
});

test('NATS and OTLP addresses name the services that serve them', () => {
  for (const [name, s] of ferryServices(compose)) {
    const natsUrl = s.environment?.NATS_URL;
    if (natsUrl) assert.equal(natsUrl, 'nats://nats:4222', name);
    const otlp = s.environment?.OTEL_EXPORTER_OTLP_ENDPOINT;
    if (otlp) {
      assert.equal(otlp, 'http://jaeger:4317', `${name}: Jaeger takes OTLP/gRPC on 4317`);
      assert.equal(s.environment?.OTEL_EXPORTER_OTLP_PROTOCOL, 'grpc', name);
    }
  }
  for (const [name, s] of grpcServices) {
    assert.ok(s.environment?.OTEL_EXPORTER_OTLP_ENDPOINT, `${name} exports no traces`);
    if (/host-agent|migration-coordinator/.test(entryFileOf(s.command!)!)) assert.ok(s.environment?.NATS_URL, `${name} needs NATS`);
  }
});

test('each emulated host shares guest memory (/dev/shm) and its hypercall socket with its four services', () => {
  for (const [host, s] of emulatedHosts) {
    const command = s.command!;
    assert.equal(argAfter(command, '--name'), host);
    assert.equal(s.hostname, host);
    assert.equal(s.ipc, 'shareable');
    assert.ok(sizeBytes(s.shm_size!) >= sizeBytes(argAfter(command, '--capacity')), `${host}: /dev/shm is smaller than the host's capacity`);
    const dir = argAfter(command, '--dir');
    const volume = s.volumes?.find((v) => dir.startsWith(`${v.split(':')[1]}/`));
    assert.ok(volume, `${host}: ${dir} is not on a volume`);
    assert.equal(s.environment?.FERRY_EMU_GUEST_HOST, host, 'kv guests listen where the demo client can reach them');
    for (const [service, svc] of Object.entries(servicesOf(host))) {
      const what = `${host}/${service}`;
      assert.equal(svc.network_mode, `service:${host}`, what);
      assert.equal(svc.ipc, `service:${host}`, what);
      assert.ok(svc.volumes?.includes(volume), `${what} does not mount ${volume}`);
      assert.equal(env(svc, 'FERRY_EMU_SOCKET'), `${dir}/xen.sock`, what);
      assert.equal(env(svc, 'FERRY_HOST'), host, what);
      assert.equal(env(svc, 'FERRY_DRIVER'), 'emulated', what);
    }
  }
});

test('every long-running service has a health check, and starts after what it needs is healthy', () => {
  for (const [name, s] of Object.entries(compose.services)) {
    if (name === 'demo') continue;
    // Jaeger's image has no tool to probe itself with; nothing waits on it (exporters retry).
    if (name === 'jaeger') continue;
    assert.ok(s.healthcheck?.test?.length, `${name} has no health check`);
  }
  for (const [name, s] of Object.entries(compose.services)) {
    for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
      assert.ok(compose.services[dependency], `${name} depends on unknown ${dependency}`);
      const expected = dependency === 'jaeger' ? 'service_started' : 'service_healthy';
      assert.equal(condition, expected, `${name} → ${dependency}`);
    }
  }
  for (const [name, s] of grpcServices) {
    const owner = networkOwner(compose, name);
    if (owner !== name) assert.ok(s.depends_on?.[owner] || Object.keys(s.depends_on ?? {}).some((d) => compose.services[d].depends_on?.[owner]), `${name} may start before ${owner}`);
    if (/host-agent|migration-coordinator/.test(entryFileOf(s.command!)!)) assert.ok(s.depends_on?.nats, `${name} may start before NATS`);
  }
});
