// The target's end of a migration to a Xen host: Xen's stock receiver, `xl migrate-receive`,
// run by the host-agent's driver and spoken to with xl's own handshake (xl-handshake.ts).
//
// Why here, and the domain id: the receiving domain only exists once libxl created it, which xl
// does as soon as it has read the xl header with the domain's config. So the driver's
// createRestoreDomain starts xl, writes the header and config (the source's, from
// CreateRestoreDomain), waits until the domain "<name>--incoming" appears, and returns its domid:
// CreateRestoreDomain keeps its contract (a paused, empty receiving domain and its id) and
// nothing above the driver needs to know about xl. The rest of the stream comes from the local
// page-streamer through a unix socket (xl-rendezvous.ts, xl-restore-feed.ts).
//
// The commit point stays Ferry's: xl only unpauses the domain when it gets the permission to go,
// which unpause() gives (the coordinator's UnpauseDomain after COMMITTED). A rollback destroys
// the domain: abort() closes xl's stdin, on which xl destroys its incoming domain and exits
// (killed if it does not), and whatever is left is destroyed by the driver.
//
// Every byte written to xl's stdin can be teed into a file (FERRY_XL_STREAM_CAPTURE) so that
// the stream the stock receiver got can be judged by Xen's verifier.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { HypervisorError } from '@ferry/hypervisor';
import { encodeXlHeader } from '@ferry/xen-stream';
import { XL_PERMISSION_TO_GO, XlAckParser, type XlAckEvent } from './xl-handshake';
import { metaPath, socketPath, type XlReceiveMeta } from './xl-rendezvous';

export interface XlReceiverOptions {
  xl: string;
  /** The domain's name (xl receives it as "<name>--incoming"). */
  name: string;
  /** libxl JSON config for the xl header. */
  config: string;
  maxPages: number;
  /** Rendezvous folder (sockets and meta files). */
  dir: string;
  /** Tee of every byte given to xl (the whole xl stream), when set. */
  capturePath?: string;
  /** Where xl's own messages (stderr) go; default <dir>/<name>.xl.log. */
  xlLogPath?: string;
  /** xl -vvv (libxl's debug messages in the log). */
  verbose?: boolean;
  /** The domid of a domain with this name, if one exists. */
  findDomid(name: string): Promise<number | undefined>;
  /** Bound of each wait (banner, domain creation). */
  timeoutMs?: number;
}

type State = 'starting' | 'receiving' | 'ready' | 'going' | 'done' | 'failed';

const DEFAULT_TIMEOUT_MS = 120_000;
const EXIT_GRACE_MS = 30_000;

export class XlReceiver {
  domid = 0;
  private state: State = 'starting';
  private failure: string | null = null;
  private readonly child: ChildProcess;
  private readonly acks = new XlAckParser();
  private readonly waiters: Array<() => void> = [];
  private server: Server | null = null;
  private feeder: Socket | null = null;
  private readonly capture: WriteStream | null;
  private readonly xlLog: WriteStream;
  private stderrTail = '';
  private exited: { code: number | null; signal: string | null } | null = null;
  private reportCode: number | null = null;

  private constructor(private readonly opts: XlReceiverOptions) {
    mkdirSync(opts.dir, { recursive: true });
    this.capture = opts.capturePath ? createWriteStream(opts.capturePath) : null;
    this.xlLog = createWriteStream(opts.xlLogPath ?? `${opts.dir}/${opts.name}.xl.log`, { flags: 'a' });
    // No -e: like the receiver `xl migrate` starts, xl stays behind to watch the domain.
    this.child = spawn(opts.xl, [...(opts.verbose ? ['-vvv'] : []), 'migrate-receive'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', (err) => this.fail(`writing to xl migrate-receive failed: ${err.message}`));
    this.child.stdout!.on('data', (chunk: Buffer) => this.onAck(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => {
      // xl's watcher keeps writing after the handshake: the log ends only with the process.
      if (!this.xlLog.writableEnded) this.xlLog.write(chunk);
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    this.child.on('error', (err) => this.fail(`xl migrate-receive could not run: ${err.message}`));
    this.xlLog.on('error', () => undefined);
    this.capture?.on('error', () => undefined);
    // 'close', not 'exit': only then has everything xl wrote (its report) been read.
    this.child.on('close', (code, signal) => {
      this.xlLog.end();
      this.exited = { code, signal };
      if (this.state !== 'done' && this.reportCode !== 0) this.fail(`xl migrate-receive exited (${signal ?? `code ${code}`})`);
      this.wake();
    });
  }

  /** Starts xl, hands it the xl header and config, and resolves once libxl created the domain. */
  static async start(opts: XlReceiverOptions): Promise<XlReceiver> {
    const r = new XlReceiver(opts);
    try {
      await r.startup();
      return r;
    } catch (err) {
      await r.abort();
      throw err;
    }
  }

  get incomingName(): string {
    return `${this.opts.name}--incoming`;
  }

  get isFailed(): boolean {
    return this.state === 'failed';
  }

  private async startup(): Promise<void> {
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.until(() => this.state !== 'starting', timeoutMs, 'the banner of xl migrate-receive');
    this.write(encodeXlHeader(this.opts.config));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.error(`xl migrate-receive did not create the domain ${this.incomingName}`);
      const domid = await this.opts.findDomid(this.incomingName);
      if (domid !== undefined) {
        this.domid = domid;
        break;
      }
      if (Date.now() > deadline) throw new HypervisorError('ETIMEDOUT', `xl migrate-receive did not create ${this.incomingName} within ${timeoutMs / 1000} s${this.tail()}`);
      await sleep(200);
    }
    const socket = socketPath(this.opts.dir, this.domid);
    rmSync(socket, { force: true });
    this.server = createServer((s) => this.onFeeder(s));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(socket, () => resolve());
    });
    const meta: XlReceiveMeta = { domid: this.domid, name: this.incomingName, maxPages: this.opts.maxPages, socket };
    writeFileSync(metaPath(this.opts.dir, this.domid), JSON.stringify(meta));
  }

  /**
   * The permission to go: xl renames the domain to its name and unpauses it, then reports.
   * Resolves once the domain runs; throws with xl's words when it could not start it.
   */
  async permitToGo(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (this.state === 'done') return;
    await this.until(() => this.state === 'ready' || this.state === 'going', timeoutMs, 'xl migrate-receive to report the domain received');
    if (this.state === 'ready') {
      this.state = 'going';
      this.write(XL_PERMISSION_TO_GO, false);
    }
    await this.until(() => this.reportCode !== null, timeoutMs, "xl migrate-receive's unpause report");
    if (this.reportCode !== 0) {
      this.fail(`xl migrate-receive could not start the domain (error ${-(this.reportCode ?? 0)})`);
      throw this.error('the domain did not start on this host');
    }
    this.state = 'done';
    this.cleanUp();
    // xl exits right after a good report; its watcher (the daemonised copy) stays with the domain.
    await this.until(() => this.exited !== null, EXIT_GRACE_MS, 'xl migrate-receive to exit').catch(() => undefined);
  }

  /** Ends the receive: EOF on xl's stdin makes it destroy its incoming domain; a stuck xl is killed. */
  async abort(): Promise<void> {
    if (this.state !== 'done' && this.state !== 'failed') this.fail('the migration was rolled back');
    this.feeder?.destroy();
    this.child.stdin?.end();
    await this.until(() => this.exited !== null, EXIT_GRACE_MS, 'xl migrate-receive to exit').catch(() => {
      this.child.kill('SIGKILL');
    });
    this.cleanUp();
  }

  private onFeeder(socket: Socket): void {
    this.feeder?.destroy();
    this.feeder = socket;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (this.state !== 'receiving') return;
      if (!this.write(chunk)) {
        socket.pause();
        this.child.stdin!.once('drain', () => socket.resume());
      }
    });
    this.tell(socket);
  }

  /** Tells the feeder how the restore went, once it is known. */
  private tell(socket: Socket | null): void {
    if (!socket || socket.destroyed) return;
    if (this.state === 'failed') socket.end(`failed ${this.failure ?? 'unknown'}${this.tail()}\n`.replace(/\n(?!$)/g, ' '));
    else if (this.state === 'ready' || this.state === 'going' || this.state === 'done') socket.write('ready\n');
  }

  /** Bytes for xl's stdin; the stream's (not the handshake's) are teed into the capture. */
  private write(bytes: Buffer, stream = true): boolean {
    if (stream && this.capture && !this.capture.writableEnded) this.capture.write(bytes);
    return this.child.stdin!.write(bytes);
  }

  private onAck(chunk: Buffer): void {
    let events: XlAckEvent[];
    try {
      events = this.acks.push(chunk);
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    for (const e of events) {
      if (e.kind === 'banner') this.state = 'receiving';
      else if (e.kind === 'ready') {
        this.state = 'ready';
        this.tell(this.feeder);
      } else if (e.kind === 'report') this.reportCode = e.code;
    }
    this.wake();
  }

  private fail(why: string): void {
    if (this.state === 'failed' || this.state === 'done') return;
    this.state = 'failed';
    this.failure = why;
    this.tell(this.feeder);
    this.wake();
  }

  private cleanUp(): void {
    this.server?.close();
    this.server = null;
    if (this.domid) {
      rmSync(metaPath(this.opts.dir, this.domid), { force: true });
      rmSync(socketPath(this.opts.dir, this.domid), { force: true });
    }
    this.capture?.end();
  }

  private tail(): string {
    const t = this.stderrTail.trim().split('\n').slice(-4).join(' | ');
    return t ? ` (xl: ${t})` : '';
  }

  private error(what: string): HypervisorError {
    return new HypervisorError('EIO', `${what}: ${this.failure ?? 'unknown failure'}${this.tail()}`);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.state === 'failed') throw this.error(`waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new HypervisorError('ETIMEDOUT', `no sign of ${what} within ${timeoutMs / 1000} s${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
