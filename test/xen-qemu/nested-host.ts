// One nested Xen 4.17 host: qemu-system-x86_64 (TCG, with SVM+NPT so PVH guests get HAP and
// log-dirty) booting Debian's hypervisor through QEMU's multiboot loader, a PV dom0 from our
// initramfs, QEMU user networking (the outer machine is 10.0.2.2; chosen loopback ports are
// forwarded in), a read-only 9p share of the outer / and a writable 9p share of this host's folder.
// QEMU always runs under coreutils `timeout`, in its own process group, and is killed when the
// harness exits, however it exits.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Dom0Shell } from './dom0-shell';
import type { HarnessSettings } from './settings';

/** The control shell's port inside dom0 (forwarded from a free loopback port outside). */
const CONTROL_PORT = 7100;

export interface PortForward {
  /** Loopback port on the outer machine. */
  outer: number;
  /** Port inside dom0. */
  inner: number;
}

export interface NestedHostOptions {
  name: string;
  /** This host's folder on the outer machine: the console log and QEMU's own log; shared as /work. */
  dir: string;
  /** The unpacked hypervisor (multiboot ELF). */
  xen: string;
  dom0Kernel: string;
  dom0Image: string;
  /** Free outer port for the control shell. */
  controlPort: number;
  /** Extra forwards into dom0 (Ferry's services, the migration receiver). */
  forwards: PortForward[];
  settings: HarnessSettings;
}

const live = new Set<ChildProcess>();
const killAll = () => {
  for (const child of live) killGroup(child, 'SIGKILL');
};
process.once('exit', killAll);
// A signal ends Node without its 'exit' event: take the QEMUs down first. `on`, not `once`: a
// second signal (say from a wrapping `timeout`) must not find the default action in place.
let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killAll();
    if (signalled) return;
    signalled = true;
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

export class NestedXenHost {
  readonly shell: Dom0Shell;
  readonly consoleLog: string;
  private exit: string | undefined;

  private constructor(
    readonly opts: NestedHostOptions,
    private readonly qemu: ChildProcess,
    readonly bootStartedAt: number,
  ) {
    this.shell = new Dom0Shell(opts.name, opts.controlPort);
    this.consoleLog = join(opts.dir, 'console.log');
    qemu.once('exit', (code, signal) => {
      live.delete(qemu);
      this.exit = signal ? `killed by ${signal}` : code === 124 ? 'stopped by its timeout' : `exited with code ${code}`;
    });
  }

  /** Starts QEMU; resolves once the QEMU process runs (use waitReady() for dom0). */
  static start(opts: NestedHostOptions): NestedXenHost {
    const s = opts.settings;
    mkdirSync(opts.dir, { recursive: true });
    const consoleLog = join(opts.dir, 'console.log');
    const forwards = [{ outer: opts.controlPort, inner: CONTROL_PORT }, ...opts.forwards]
      .map((f) => `hostfwd=tcp:127.0.0.1:${f.outer}-:${f.inner}`)
      .join(',');
    const dom0Cmdline = `console=hvc0 earlyprintk=xen ferry.host=${opts.name} ferry.ctl=${CONTROL_PORT}`;
    const xenCmdline = [
      'console=com1',
      'com1=115200,8n1',
      `dom0_mem=${s.dom0MemoryMiB}M,max:${s.dom0MemoryMiB}M`,
      'loglvl=all',
      'guest_loglvl=all',
      'noreboot',
      ...s.xenExtraArgs,
    ].join(' ');
    for (const p of [opts.xen, opts.dom0Kernel, opts.dom0Image]) {
      if (/[, ]/.test(p)) throw new Error(`QEMU's module list cannot carry a path with a comma or space: ${p}`);
    }
    const args = [
      '-k', '10', String(s.qemuTimeoutSec),
      'qemu-system-x86_64',
      '-accel', `tcg,thread=${s.tcgThread}`,
      '-cpu', 'qemu64,+svm,+npt',
      '-m', String(s.qemuMemoryMiB),
      '-smp', String(s.qemuCpus),
      '-display', 'none',
      '-monitor', 'none',
      '-serial', `file:${consoleLog}`,
      '-no-reboot',
      '-kernel', opts.xen,
      '-append', xenCmdline,
      '-initrd', `${opts.dom0Kernel} ${dom0Cmdline},${opts.dom0Image}`,
      '-netdev', `user,id=u0,${forwards}`,
      '-device', 'virtio-net-pci,netdev=u0',
      '-virtfs', 'local,path=/,mount_tag=hostshare,security_model=none,readonly=on,multidevs=remap',
      '-virtfs', `local,path=${opts.dir},mount_tag=work,security_model=none`,
    ];
    const qemuLog = openSync(join(opts.dir, 'qemu.log'), 'a');
    const qemu = spawn('timeout', args, { stdio: ['ignore', qemuLog, qemuLog], detached: true });
    closeSync(qemuLog);
    live.add(qemu);
    return new NestedXenHost(opts, qemu, Date.now());
  }

  get name(): string {
    return this.opts.name;
  }

  /** Waits for dom0's ready marker; fails on QEMU's exit, dom0's own failure marker or the boot bound. */
  async waitReady(): Promise<number> {
    const deadline = this.bootStartedAt + this.opts.settings.bootTimeoutSec * 1000;
    for (;;) {
      const text = existsSync(this.consoleLog) ? readFileSync(this.consoleLog, 'utf8') : '';
      const failed = /FERRY-DOM0-FAILED (.*)/.exec(text);
      if (failed) throw new Error(`${this.name}: dom0 init failed at "${failed[1].trim()}"; console: ${this.consoleLog}`);
      // The marker comes just before the control shell listens: ready once it answers.
      if (text.includes('FERRY-DOM0-READY') && (await this.shell.run('true', 10_000).then(() => true, () => false))) {
        return Date.now() - this.bootStartedAt;
      }
      if (this.exit) throw new Error(`${this.name}: QEMU ${this.exit} before dom0 was ready; console: ${this.consoleLog}\n${tailOf(text)}`);
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: dom0 not ready within ${this.opts.settings.bootTimeoutSec} s; console: ${this.consoleLog}\n${tailOf(text)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Why QEMU is gone, or undefined while it runs. */
  get exited(): string | undefined {
    return this.exit;
  }

  /** Powers the host off: SIGTERM to QEMU's process group, SIGKILL after a grace period. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exit) return;
    const gone = new Promise<void>((r) => this.qemu.once('exit', () => r()));
    killGroup(this.qemu, 'SIGTERM');
    const timer = setTimeout(() => killGroup(this.qemu, 'SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

/** Signals QEMU's whole process group (coreutils timeout and QEMU), and the leader itself. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  for (const target of [-child.pid, child.pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // already gone
    }
  }
}

function tailOf(text: string, lines = 25): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
