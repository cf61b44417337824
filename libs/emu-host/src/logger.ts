// The emulated host logs JSON lines (pino) to stderr; stdout carries only its ready line.

import pino, { type Logger } from 'pino';

export function createHostLogger(hostName: string, level = process.env.FERRY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'emu-host', level, base: { host: hostName, pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
