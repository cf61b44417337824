// Running shell scripts in a nested dom0. dom0-init.sh serves `nc -ll -e /bin/sh` on a port that
// QEMU forwards from the outer machine's loopback. The script travels as one base64 line, is
// written to a file and run with stdin from /dev/null, so nothing it runs can eat the rest of the
// script from the connection; its exit status comes back on a marker line.

import { Socket } from 'node:net';

const RC_MARKER = '__FERRY_RC=';

export interface ShellResult {
  code: number;
  output: string;
}

export class Dom0Shell {
  constructor(
    readonly label: string,
    readonly port: number,
  ) {}

  /**
   * Runs `script` (sh syntax), resolving with its exit status and combined output. `onChunk` sees
   * the output as it arrives (with the outer machine's clock), for measurements.
   */
  run(script: string, timeoutMs = 120_000, onChunk?: (chunk: Buffer, atMs: number) => void): Promise<ShellResult> {
    const encoded = Buffer.from(script).toString('base64');
    const line =
      `f=/tmp/ctl.$$.sh; echo '${encoded}' | base64 -d > $f; ` +
      `sh $f </dev/null 2>&1; echo "${RC_MARKER}$?"; rm -f $f\n`;
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${this.label}: script did not finish within ${timeoutMs} ms: ${firstLine(script)}`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${this.label}: control shell at 127.0.0.1:${this.port}: ${err.message}`));
      });
      socket.on('data', (c: Buffer) => {
        onChunk?.(c, Date.now());
        chunks.push(c);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        const at = text.lastIndexOf(RC_MARKER);
        if (at < 0) {
          reject(new Error(`${this.label}: the control shell closed without an exit status: ${firstLine(script)}\n${text.slice(-2000)}`));
          return;
        }
        resolve({ code: Number.parseInt(text.slice(at + RC_MARKER.length), 10), output: text.slice(0, at) });
      });
      socket.connect(this.port, '127.0.0.1', () => socket.end(line));
    });
  }

  /** Like run(), but a non-zero exit status is an error carrying the output. */
  async check(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.run(script, timeoutMs);
    if (r.code !== 0) throw new Error(`${this.label}: \`${firstLine(script)}\` exited ${r.code}:\n${r.output.trim().slice(-3000)}`);
    return r.output;
  }
}

function firstLine(script: string): string {
  const line = script.trim().split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
