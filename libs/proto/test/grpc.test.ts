// The generated service definitions and clients over a real @grpc/grpc-js server on
// 127.0.0.1:0: a unary RPC with a oneof request, a gRPC error status, an RPC the server does not
// implement, and a server-streaming RPC (WatchMigration). Every server and client is closed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import {
  DomainState,
  HostAgentClient,
  HostAgentService,
  MigrationClient,
  MigrationEvent,
  MigrationPhase,
  MigrationService,
  type Domain,
  type GetDomainResponse,
  type GetHostInfoResponse,
  type HostAgentServer,
  type MigrationServer,
  type WatchMigrationResponse,
} from '@ferry/proto';

const DOMAINS: Domain[] = [
  {
    domid: 3,
    name: 'kv-1',
    uuid: '00000000-0000-0000-0000-000000000003',
    state: DomainState.DOMAIN_STATE_RUNNING,
    shutdownReason: 0,
    nrPages: 2n ** 33n, // 32 TiB of pages: a uint64 beyond 32 bits
    maxPages: 2n ** 33n,
    vcpus: 2,
    logDirty: false,
    serviceAddress: '127.0.0.1:7000',
    host: 'host-a',
    memoryPages: 0n,
    xlConfig: '',
    migrationId: '',
  },
];

/** Only GetDomain; every other HostAgentService RPC is left unimplemented on purpose. */
const hostAgent: Pick<HostAgentServer, 'getDomain'> = {
  getDomain(call, callback) {
    const selector = call.request.selector;
    const domain = DOMAINS.find((d) =>
      selector?.$case === 'name' ? d.name === selector.name : selector?.$case === 'domid' ? d.domid === selector.domid : false,
    );
    if (!domain) {
      callback({ code: grpc.status.NOT_FOUND, details: `no domain ${JSON.stringify(selector)}` });
      return;
    }
    callback(null, { domain });
  },
};

/** Replays three events of the asked migration, after the asked sequence, then ends. */
const migrationService: Pick<MigrationServer, 'watchMigration'> = {
  watchMigration(call) {
    const { migrationId, afterSequence } = call.request;
    const phases = [MigrationPhase.MIGRATION_PHASE_PENDING, MigrationPhase.MIGRATION_PHASE_PREFLIGHT, MigrationPhase.MIGRATION_PHASE_PRECOPY];
    phases.forEach((to, i) => {
      const sequence = BigInt(i + 1);
      if (sequence <= afterSequence) return;
      const event = MigrationEvent.fromPartial({
        migrationId,
        sequence,
        time: new Date(1_700_000_000_000 + i),
        event: { $case: 'phaseChanged', phaseChanged: { from: i === 0 ? MigrationPhase.MIGRATION_PHASE_UNSPECIFIED : phases[i - 1], to } },
      });
      call.write({ event });
    });
    call.end();
  },
};

let server: grpc.Server;
let address: string;
const clients: grpc.Client[] = [];

before(async () => {
  server = new grpc.Server();
  server.addService(HostAgentService, hostAgent);
  server.addService(MigrationService, migrationService);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
      err ? reject(err) : resolve(boundPort),
    );
  });
  address = `127.0.0.1:${port}`;
});

after(async () => {
  for (const client of clients) client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

function hostAgentClient(): HostAgentClient {
  const client = new HostAgentClient(address, grpc.credentials.createInsecure());
  clients.push(client);
  return client;
}

/** Runs a unary call and resolves with its response, or rejects with its ServiceError. */
function unary<Res>(invoke: (callback: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(err) : resolve(res)));
  });
}

test('the generated client calls a unary RPC by domid and by name (oneof request)', async () => {
  const client = hostAgentClient();
  const byDomid = await unary<GetDomainResponse>((cb) => client.getDomain({ selector: { $case: 'domid', domid: 3 } }, cb));
  assert.deepEqual(byDomid.domain, DOMAINS[0]);
  assert.equal(byDomid.domain?.nrPages, 2n ** 33n);
  const byName = await unary<GetDomainResponse>((cb) => client.getDomain({ selector: { $case: 'name', name: 'kv-1' } }, cb));
  assert.equal(byName.domain?.domid, 3);
});

test('a gRPC error status reaches the client with its code and details', async () => {
  const client = hostAgentClient();
  const missing = unary<GetDomainResponse>((cb) => client.getDomain({ selector: { $case: 'name', name: 'missing' } }, cb));
  await assert.rejects(missing, (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.match(err.details, /missing/);
    return true;
  });
});

test('an RPC the server does not implement answers UNIMPLEMENTED', async () => {
  const client = hostAgentClient();
  await assert.rejects(unary<GetHostInfoResponse>((cb) => client.getHostInfo({}, cb)), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
    return true;
  });
});

test('a server-streaming RPC delivers every event in order, and resumes after a sequence', async () => {
  const client = new MigrationClient(address, grpc.credentials.createInsecure());
  clients.push(client);

  async function watch(afterSequence: bigint): Promise<WatchMigrationResponse[]> {
    const received: WatchMigrationResponse[] = [];
    for await (const message of client.watchMigration({ migrationId: 'mig-7', afterSequence })) {
      received.push(message as WatchMigrationResponse);
    }
    return received;
  }

  const all = await watch(0n);
  assert.deepEqual(
    all.map((m) => m.event?.sequence),
    [1n, 2n, 3n],
  );
  const last = all[2]?.event;
  assert.equal(last?.migrationId, 'mig-7');
  assert.ok(last?.event?.$case === 'phaseChanged');
  assert.equal(last.event.phaseChanged.to, MigrationPhase.MIGRATION_PHASE_PRECOPY);
  assert.equal(last.event.phaseChanged.from, MigrationPhase.MIGRATION_PHASE_PREFLIGHT);
  assert.equal(last.time?.getTime(), 1_700_000_000_002);

  const resumed = await watch(2n);
  assert.deepEqual(
    resumed.map((m) => m.event?.sequence),
    [3n],
  );
});
