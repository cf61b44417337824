// Runs Xen's own stream verifier (verify-stream-v2 of Debian's xen-utils-4.17, through
// ../shared/tools/xen-verify-stream beside the repository). A test that needs it fails, loudly,
// when it is missing or cannot run: the verifier is the judge of the stream format.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const XEN_VERIFY_STREAM = join(REPO_ROOT, '..', 'shared', 'tools', 'xen-verify-stream');

export interface VerifierRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Throws with instructions when the verifier script is absent; it downloads Xen's tools on first use. */
export function requireVerifier(): string {
  try {
    accessSync(XEN_VERIFY_STREAM, constants.X_OK);
  } catch {
    throw new Error(
      `Xen's stream verifier is missing: ${XEN_VERIFY_STREAM} must exist and be executable ` +
        '(CI copies shared/ beside the clone; it runs verify-stream-v2 from Debian\'s xen-utils-4.17 with python3)',
    );
  }
  return XEN_VERIFY_STREAM;
}

/** `xen-verify-stream -f FORMAT -v -i FILE`; exit code 0 means Xen accepts the stream. */
export function verifyStream(file: string, format: 'xl' | 'libxl' | 'libxc'): Promise<VerifierRun> {
  const tool = requireVerifier();
  return new Promise((resolvePromise, reject) => {
    execFile(tool, ['-f', format, '-v', '-i', file], { timeout: 600_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      // 0 accepted, 1 stream error, 2 script error; anything else means the tool itself did not run.
      if (code !== 0 && code !== 1 && code !== 2) {
        reject(new Error(`Xen's verifier could not run (${err?.message}): ${stderr}`));
        return;
      }
      resolvePromise({ code, stdout, stderr });
    });
  });
}
