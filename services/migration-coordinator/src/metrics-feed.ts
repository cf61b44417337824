// Keeps the coordinator's metrics fed from the event stream: follows every migration's events
// (each handled in a CONSUMER span joined to the migration's trace) and, should the follow end
// early (NATS away, the consumer lost), starts again after a pause, until `signal` aborts.

import type { MigrationEvents } from '@ferry/cluster';
import type { Logger } from '@ferry/runtime';
import type { MigrationMetrics } from './migration-metrics';

const RETRY_MS = 2_000;

export async function feedMetricsFromEvents(events: MigrationEvents, metrics: MigrationMetrics, logger: Logger, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      const following = await events.follow(({ event }) => metrics.record(event), {
        signal,
        onUndecodable: (subject, err) => logger.warn({ subject, err: (err as Error).message }, 'an event that is not a MigrationEvent was skipped'),
      });
      await following.done;
    } catch (err) {
      if (signal.aborted) break;
      logger.warn({ err: (err as Error).message }, 'following migration events for metrics failed; retrying');
    }
    if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
  }
}
