// Building an initramfs: a staging folder filled file by file, then packed as a gzipped newc cpio
// archive (what the Linux kernel unpacks into its rootfs). Busybox gets one link per applet.

import { execFileSync, execSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export class InitramfsStage {
  constructor(readonly dir: string) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'run', 'tmp', 'etc', 'var']) {
      mkdirSync(join(dir, d), { recursive: true });
    }
  }

  /** Copies a file from the outer machine to `to` (a path inside the image), keeping its mode. */
  copy(from: string, to: string, mode?: number): void {
    const dest = join(this.dir, to);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(from, dest);
    if (mode !== undefined) chmodSync(dest, mode);
  }

  write(to: string, text: string, mode = 0o644): void {
    const dest = join(this.dir, to);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, text, { mode });
  }

  /** Copies a whole folder tree (symlinks kept as symlinks). */
  copyTree(from: string, to: string): void {
    const dest = join(this.dir, to);
    mkdirSync(dirname(dest), { recursive: true });
    execFileSync('cp', ['-a', from, dest]);
  }

  /** A static busybox as /bin/busybox with a link for each of its applets. */
  installBusybox(busybox = '/bin/busybox'): void {
    this.copy(busybox, 'bin/busybox', 0o755);
    const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const applet of applets) {
      const link = join(this.dir, 'bin', applet);
      if (!existsSync(link)) symlinkSync('busybox', link);
    }
  }

  /**
   * Copies the shared libraries `binaries` need (their ldd closure). Libraries found under
   * `libraryDirs` (the unpacked Debian root) are assumed copied already; the rest come from the
   * outer machine, so the image's libc is the outer machine's.
   */
  installLibraries(binaries: string[], libraryDirs: string[]): void {
    const needed = new Set<string>();
    for (const bin of binaries) {
      const out = execFileSync('ldd', [bin], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: libraryDirs.join(':') } });
      for (const line of out.split('\n')) {
        const path = /=>\s+(\/\S+)/.exec(line)?.[1] ?? /^\s+(\/\S+)\s+\(/.exec(line)?.[1];
        if (path) needed.add(path);
      }
    }
    for (const path of needed) {
      if (libraryDirs.some((d) => path.startsWith(`${d}/`))) continue;
      const to = path.startsWith('/lib64/') ? path.slice(1) : `lib/x86_64-linux-gnu/${path.slice(path.lastIndexOf('/') + 1)}`;
      if (!existsSync(join(this.dir, to))) this.copy(path, to);
    }
  }

  /** Packs the stage into `out` (gzip level 1: the image is rebuilt often and read once). */
  pack(out: string): string {
    mkdirSync(dirname(out), { recursive: true });
    execSync(`find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > '${out}'`, { cwd: this.dir, shell: '/bin/sh' });
    return out;
  }
}

/** True when `path` is an ELF executable or library. */
export function isElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
