// Serves a registry for Prometheus: GET /metrics answers the text exposition; anything else is
// 404 (or 405 for another method). One small HTTP server per process, on FERRY_METRICS_LISTEN.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsRegistry } from './registry';
import { TEXT_FORMAT_CONTENT_TYPE } from './text-format';

export const METRICS_PATH = '/metrics';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:0';

export interface MetricsServer {
  /** host:port actually bound (port 0 resolves to the real port). */
  address: string;
  close(): Promise<void>;
}

/** "127.0.0.1:9464", "[::1]:0", "0.0.0.0:9464" → host and port. */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const port = Number(listen.slice(colon + 1));
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  if (colon <= 0 || !host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`not a listen address: "${listen}" (try 127.0.0.1:9464, or port 0 for any)`);
  }
  return { host, port };
}

export async function serveMetrics(registry: MetricsRegistry, listen = DEFAULT_METRICS_LISTEN): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${METRICS_PATH}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let body: string;
    try {
      body = registry.render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`could not collect metrics: ${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': TEXT_FORMAT_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  // A scrape is one short request; idle keep-alive sockets must not hold shutdown up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${shown}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
