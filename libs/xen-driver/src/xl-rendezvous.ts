// Where the two dom0 processes of a Xen target meet during a migration. The host-agent's driver
// runs Xen's stock receiver (`xl migrate-receive`, xl-receiver.ts) from CreateRestoreDomain on;
// the page-streamer's driver turns the rounds and the state it receives into Xen's stream
// (xl-restore-feed.ts). The receiver publishes, per receiving domain, a unix socket that feeds
// xl's stdin and a small JSON file describing the domain; the feed finds them by domid.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_XL_RECEIVE_DIR = '/run/ferry/xl-receive';

export interface XlReceiveMeta {
  domid: number;
  /** The name xl gave the domain while it is received ("<name>--incoming"). */
  name: string;
  /** The source domain's p2m size: every pfn of the stream is below it. */
  maxPages: number;
  /** The unix socket whose bytes go to xl's stdin after the xl header. */
  socket: string;
}

export function xlReceiveDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_XL_RECEIVE_DIR || DEFAULT_XL_RECEIVE_DIR;
}

export function metaPath(dir: string, domid: number): string {
  return join(dir, `${domid}.json`);
}

export function socketPath(dir: string, domid: number): string {
  return join(dir, `${domid}.sock`);
}

/** The domain's rendezvous, when an xl receiver is restoring it on this host. */
export function readXlReceiveMeta(dir: string, domid: number): XlReceiveMeta | null {
  const file = metaPath(dir, domid);
  if (!existsSync(file)) return null;
  try {
    const meta = JSON.parse(readFileSync(file, 'utf8')) as XlReceiveMeta;
    return meta.domid === domid && typeof meta.socket === 'string' && meta.maxPages > 0 ? meta : null;
  } catch {
    return null; // being written, or removed under us
  }
}
