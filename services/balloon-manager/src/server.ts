// BalloonManagerService over gRPC: each RPC is one BalloonManager method (libs/balloon), with
// errors mapped to gRPC statuses and reasons by the runtime's unary().

import type { BalloonManager } from '@ferry/balloon';
import { BalloonManagerService, type BalloonManagerServer } from '@ferry/proto';
import { startGrpcServer, unary, type Logger, type StartedGrpcServer } from '@ferry/runtime';
import { BalloonManagerMetrics, observedBalloonManager } from './observability';

export const BALLOON_MANAGER_SERVICE_NAME = 'ferry.v1.BalloonManagerService';

export function balloonManagerServer(manager: BalloonManager, logger: Logger): BalloonManagerServer {
  return {
    getMemory: unary(logger, 'GetMemory', (req) => manager.getMemory(req)),
    compact: unary(logger, 'Compact', (req) => manager.compact(req)),
    restore: unary(logger, 'Restore', (req) => manager.restore(req)),
    freeze: unary(logger, 'Freeze', (req) => manager.freeze(req)),
    unfreeze: unary(logger, 'Unfreeze', (req) => manager.unfreeze(req)),
  };
}

export function startBalloonManagerServer(
  manager: BalloonManager,
  address: string,
  logger: Logger,
  metrics = new BalloonManagerMetrics(),
): Promise<StartedGrpcServer> {
  return startGrpcServer({
    address,
    logger,
    services: [
      { name: BALLOON_MANAGER_SERVICE_NAME, definition: BalloonManagerService, implementation: observedBalloonManager(balloonManagerServer(manager, logger), metrics) },
    ],
  });
}
