// "host:port" endpoints of data connections ("[v6addr]:port" for IPv6 literals).

import { invalidArgument } from '@ferry/runtime';

export function parseEndpoint(endpoint: string, opts: { allowPortZero?: boolean } = {}): { host: string; port: number } {
  const colon = endpoint.lastIndexOf(':');
  const port = Number(endpoint.slice(colon + 1));
  const lowest = opts.allowPortZero ? 0 : 1;
  if (colon <= 0 || endpoint.slice(colon + 1) === '' || !Number.isInteger(port) || port < lowest || port > 65535) {
    throw invalidArgument('BAD_ENDPOINT', `not a host:port endpoint: "${endpoint}"`);
  }
  return { host: endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

export function formatEndpoint(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
