// Listing a KV bucket's keys. KV.keys() walks the bucket with a consumer, and a key written while
// it runs can be named twice or not at all (seen here with one writer: 529 of 540 listings named a
// key twice, 12 of 1587 missed one). Hosts rewrite their registry entries every few seconds, so a
// host listed twice showed each of its domains twice (a migration then refused the domain's name as
// ambiguous), and a host missed looked unregistered. The stream's own subject list (STREAM.INFO
// with a subjects filter, paged by the client) is one answer of the server instead.

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/** The keys of KV bucket `bucket`, each once (deleted keys included: their entries read as DEL). */
export async function bucketKeys(nc: NatsConnection, bucket: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}
