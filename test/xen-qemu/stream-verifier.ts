// Xen's own judge of a migration stream: verify-stream-v2 from Debian's xen-utils-4.17, run on the
// outer machine (it is Python) against the bytes the receiver was sent.

import { spawnSync } from 'node:child_process';
import type { DebianRoot } from './debian-root';

export interface StreamVerdict {
  verified: boolean;
  /** The verifier's last lines (its summary, or why it refused). */
  summary: string;
}

export function verifyStream(debian: DebianRoot, file: string, format: 'xl' | 'libxl' | 'libxc'): StreamVerdict {
  const r = spawnSync('/usr/bin/python3', [debian.verifyStream, '-v', '-f', format, '-i', file], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: debian.pythonPath },
    timeout: 300_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  const lines = text.split('\n');
  const summary = [lines.find((l) => /Domain Header/i.test(l)), ...lines.slice(-3)].filter(Boolean).join(' | ');
  return { verified: r.status === 0, summary: r.error ? r.error.message : summary };
}
