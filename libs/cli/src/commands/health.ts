// `ferry health ADDRESS`: asks a Ferry process's standard grpc.health.v1.Health service whether it
// serves. Container health checks use it (docker-compose), and so can an operator on a host.

import { credentials, makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { num, parse, UsageError } from '../args';
import type { Command } from './command';

interface HealthCheckResponse {
  status: string;
}

type HealthClient = InstanceType<ReturnType<typeof makeGenericClientConstructor>> & {
  check(
    req: { service: string },
    opts: { deadline: number },
    done: (err: Error | null, res?: HealthCheckResponse) => void,
  ): void;
};

export const health: Command = {
  name: 'health',
  usage: 'health HOST:PORT [--service NAME] [--timeout-ms 3000]',
  summary: 'check a Ferry process over gRPC health; exit 0 when it serves',
  help: 'Without --service the server as a whole is checked; with it, one service, e.g. ferry.v1.HostAgentService.',
  async run(argv) {
    const { values, positionals } = parse(argv, { service: { type: 'string' }, 'timeout-ms': { type: 'string' } });
    const address = positionals[0];
    if (!address || positionals.length > 1) throw new UsageError('give exactly one HOST:PORT');
    const timeoutMs = num(values['timeout-ms'], 'timeout-ms', 3000);
    const Client = makeGenericClientConstructor(healthService as unknown as ServiceDefinition, 'Health');
    const client = new Client(address, credentials.createInsecure()) as HealthClient;
    try {
      const status = await new Promise<string>((resolve, reject) =>
        client.check({ service: values.service ?? '' }, { deadline: Date.now() + timeoutMs }, (err, res) =>
          err ? reject(err) : resolve(res?.status ?? 'UNKNOWN'),
        ),
      );
      console.log(`${address}${values.service ? ` ${values.service}` : ''}: ${status}`);
      return status === 'SERVING' ? 0 : 1;
    } catch (err) {
      console.error(`${address}: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    } finally {
      client.close();
    }
  },
};
