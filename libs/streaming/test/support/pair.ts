// Two real emulated hosts with a page streamer each (in this process, on 127.0.0.1 port 0), and a
// memory tracker on the source host handing out send sets, as the page streamer's gRPC client
// would get them.

import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '@ferry/runtime';
import { PrepareRoundResponse } from '@ferry/proto';
import { NoSendSetSource, PageStreamer, type PreparedFinalRound, type SendSetSource, type TakenSendSet } from '@ferry/streaming';
import { MemoryTracker } from '@ferry/tracker';
import { startEmuHosts, type TestHosts } from '../../../tracker/test/support/emu';


/** The source tracker's send sets without the gRPC hop (services/page-streamer tests cover that). */
export class TrackerSendSets implements SendSetSource {
  constructor(private readonly tracker: MemoryTracker) {}

  take(migrationId: string, round: number): Promise<TakenSendSet> {
    return this.tracker.takeSendSet(migrationId, round);
  }

  async prepareFinal(fence: { migrationId: string; epoch: bigint }, round: number): Promise<PreparedFinalRound> {
    const { counts: c, sendSet } = await this.tracker.prepareAndTake(fence, round, true);
    const n = BigInt;
    const prepared = PrepareRoundResponse.fromPartial({
      round: c.round,
      dirtyCount: n(c.dirtyCount),
      faultCount: n(c.faultCount),
      pagesToSend: n(c.pagesToSend),
      pagesDeferred: n(c.pagesDeferred),
      pagesReleased: n(c.pagesReleased),
      layers: { cold: n(c.layers.cold), warm: n(c.layers.warm), hot: n(c.layers.hot) },
      populatedPages: n(c.populatedPages),
      elapsedMs: n(c.elapsedMs),
    });
    return { prepared, set: sendSet };
  }

  close(): void {}
}

export interface StreamerPair {
  hosts: TestHosts;
  logger: Logger;
  tracker: MemoryTracker;
  source: PageStreamer;
  target: PageStreamer;
  stop(): Promise<void>;
}

export async function startStreamerPair(opts: { inactivityTimeoutMs?: number } = {}): Promise<StreamerPair> {
  const hosts = await startEmuHosts(['src', 'dst']);
  const logger = createLogger('streaming-test', {});
  logger.level = process.env.FERRY_LOG_LEVEL ?? 'warn';
  const [a, b] = hosts.hosts;
  const tracker = new MemoryTracker(a.driver, logger);
  const streamers: PageStreamer[] = [];
  try {
    streamers.push(
      await PageStreamer.start({
        driver: a.driver,
        sendSets: new TrackerSendSets(tracker),
        dataListen: '127.0.0.1:0',
        hostName: 'src',
        logger,
        sender: opts.inactivityTimeoutMs ? { inactivityTimeoutMs: opts.inactivityTimeoutMs } : undefined,
      }),
    );
    streamers.push(await PageStreamer.start({ driver: b.driver, sendSets: new NoSendSetSource(), dataListen: '127.0.0.1:0', hostName: 'dst', logger }));
  } catch (err) {
    for (const s of streamers) await s.close();
    await hosts.stop();
    throw err;
  }
  return {
    hosts,
    logger,
    tracker,
    source: streamers[0],
    target: streamers[1],
    stop: async () => {
      await tracker.stopAll();
      for (const s of streamers) await s.close();
      await hosts.stop();
    },
  };
}

export function newToken(): string {
  return randomBytes(16).toString('hex');
}
