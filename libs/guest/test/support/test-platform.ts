// A test double of the hypervisor side of GuestPlatform, in process: RAM, p2m and the dirty bitmap
// in SharedArrayBuffers, an in-memory xenstore with watches, balloon hypercalls that change the
// p2m, a pause switch, a suspend the test answers, and a NIC on 127.0.0.1.
// Only for unit tests of the guest; the real host is libs/emu-host.

import { createServer, type Server, type Socket } from 'node:net';
import { CONTROL, PAGE_SIZE, WINDOW_PAGES, type GuestPlatform, type GuestXenstore, type MemoryBacking } from '../../src/platform';

export class MemXenstore implements GuestXenstore {
  readonly values = new Map<string, string>();
  private readonly watches: { path: string; onChange: (path: string) => void }[] = [];
  private readonly waiters: { path: string; test: (v: string | null) => boolean; resolve: (v: string | null) => void }[] = [];
  /** Every write, in order (tests look at the guest's writes). */
  readonly writes: { path: string; value: string }[] = [];

  async read(path: string): Promise<string | null> {
    return this.values.get(path) ?? null;
  }

  async write(path: string, value: string): Promise<void> {
    this.set(path, value);
  }

  /** A write from the toolstack side (same effect; not recorded as the guest's). */
  set(path: string, value: string, record = true): void {
    this.values.set(path, value);
    if (record) this.writes.push({ path, value });
    for (const w of this.watches) if (path === w.path || path.startsWith(w.path + '/')) setImmediate(() => w.onChange(path));
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w.path === path && w.test(value)) {
        this.waiters.splice(i, 1);
        w.resolve(value);
      }
    }
  }

  watch(path: string, onChange: (path: string) => void): void {
    this.watches.push({ path, onChange });
    setImmediate(() => onChange(path));
  }

  /** Resolves with the value once `test` holds for the value at path (checked now and on every write). */
  waitFor(path: string, test: (v: string | null) => boolean): Promise<string | null> {
    const now = this.values.get(path) ?? null;
    if (test(now)) return Promise.resolve(now);
    return new Promise((resolve) => this.waiters.push({ path, test, resolve }));
  }
}

export interface TestPlatformOptions {
  domid?: number;
  /** Pages the host can still give on populate_physmap (default unlimited). */
  hostFreePages?: number;
  /** Populate every page at creation (a fresh domain); false for a restore target. */
  populated?: boolean;
  quiet?: boolean;
}

export class TestPlatform implements GuestPlatform {
  readonly domid: number;
  readonly backing: MemoryBacking;
  readonly xenstore = new MemXenstore();
  readonly logs: string[] = [];
  hostFreePages: number;
  /** Sizes of the balloon hypercall batches, signed: negative = decrease_reservation. */
  readonly balloonBatches: number[] = [];
  shutdownReason: { reason: 'poweroff' | 'crash'; message?: string } | null = null;
  suspendCalls = 0;

  private readonly quiet: boolean;
  private paused = false;
  private pauseWaiters: (() => void)[] = [];
  private suspendAnswer: ((v: 0 | 1) => void) | null = null;
  private suspendedWaiters: (() => void)[] = [];
  private shutdownWaiters: (() => void)[] = [];
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(maxPages: number, options: TestPlatformOptions = {}) {
    this.domid = options.domid ?? 1;
    this.hostFreePages = options.hostFreePages ?? Number.POSITIVE_INFINITY;
    const windows = Math.ceil(maxPages / WINDOW_PAGES);
    const ram: ArrayBuffer[] = [];
    for (let w = 0; w < windows; w++) {
      ram.push(new SharedArrayBuffer(Math.min(WINDOW_PAGES, maxPages - w * WINDOW_PAGES) * PAGE_SIZE) as unknown as ArrayBuffer);
    }
    const words = Math.ceil(maxPages / 32);
    this.backing = {
      maxPages,
      ram,
      p2m: new Int32Array(new SharedArrayBuffer(words * 4)),
      dirty: new Int32Array(new SharedArrayBuffer(words * 4)),
      control: new Int32Array(new SharedArrayBuffer(CONTROL.SIZE * 4)),
    };
    if (options.populated !== false) for (let pfn = 0; pfn < maxPages; pfn++) this.setPopulated(pfn, true);
    this.quiet = options.quiet ?? !process.env.GUEST_TEST_DEBUG;
    this.xenstore.set('memory/static-max', String(maxPages * 4), false);
  }

  // ---- GuestPlatform ----

  decreaseReservation(pfns: readonly number[]): void {
    if (pfns.length > 512) throw new Error(`decrease_reservation batch of ${pfns.length} > 512`);
    for (const pfn of pfns) {
      if (!this.isPopulated(pfn)) throw new Error(`decrease_reservation of unpopulated pfn ${pfn}`);
      this.pageBytes(pfn).fill(0xdb); // contents are gone: make stale reads visible
      this.setPopulated(pfn, false);
    }
    this.hostFreePages += pfns.length;
    this.balloonBatches.push(-pfns.length);
  }

  populatePhysmap(pfns: readonly number[]): void {
    if (pfns.length > this.hostFreePages) throw new Error(`ENOMEM: host has ${this.hostFreePages} pages, ${pfns.length} asked`);
    for (const pfn of pfns) {
      if (this.isPopulated(pfn)) throw new Error(`populate_physmap of populated pfn ${pfn}`);
      this.pageBytes(pfn).fill(0);
      this.setPopulated(pfn, true);
    }
    this.hostFreePages -= pfns.length;
    this.balloonBatches.push(pfns.length);
  }

  checkpoint(): Promise<void> | undefined {
    if (!this.paused) return undefined;
    return new Promise((resolve) => this.pauseWaiters.push(resolve));
  }

  suspend(): Promise<0 | 1> {
    this.suspendCalls++;
    const waiters = this.suspendedWaiters;
    this.suspendedWaiters = [];
    for (const w of waiters) w();
    return new Promise((resolve) => {
      this.suspendAnswer = resolve;
    });
  }

  shutdown(reason: 'poweroff' | 'crash', message?: string): void {
    this.shutdownReason = { reason, message };
    this.log(`shutdown(${reason}${message ? `: ${message}` : ''})`);
    const waiters = this.shutdownWaiters;
    this.shutdownWaiters = [];
    for (const w of waiters) w();
  }

  async listen(onConnection: (socket: Socket) => void): Promise<string> {
    if (this.server) throw new Error('already listening');
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      onConnection(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
    return `127.0.0.1:${addr.port}`;
  }

  async unlisten(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  log(message: string): void {
    this.logs.push(message);
    if (!this.quiet) console.log(`[guest ${this.domid}] ${message}`);
  }

  // ---- the test's side ----

  pause(): void {
    this.paused = true;
  }

  unpause(): void {
    this.paused = false;
    const waiters = this.pauseWaiters;
    this.pauseWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once the guest has made the suspend hypercall. */
  whenSuspended(): Promise<void> {
    if (this.suspendAnswer) return Promise.resolve();
    return new Promise((resolve) => this.suspendedWaiters.push(resolve));
  }

  /** Answers the pending suspend hypercall: 1 = cancelled (continue in place). */
  answerSuspend(value: 0 | 1): void {
    const answer = this.suspendAnswer;
    if (!answer) throw new Error('no suspend hypercall is pending');
    this.suspendAnswer = null;
    answer(value);
  }

  whenShutdown(): Promise<void> {
    if (this.shutdownReason) return Promise.resolve();
    return new Promise((resolve) => this.shutdownWaiters.push(resolve));
  }

  isPopulated(pfn: number): boolean {
    return ((this.backing.p2m[pfn >>> 5] >>> (pfn & 31)) & 1) === 1;
  }

  populatedCount(): number {
    let n = 0;
    for (let pfn = 0; pfn < this.backing.maxPages; pfn++) if (this.isPopulated(pfn)) n++;
    return n;
  }

  setPopulated(pfn: number, on: boolean): void {
    if (on) Atomics.or(this.backing.p2m, pfn >>> 5, 1 << (pfn & 31));
    else Atomics.and(this.backing.p2m, pfn >>> 5, ~(1 << (pfn & 31)));
  }

  pageBytes(pfn: number): Uint8Array {
    const w = Math.floor(pfn / WINDOW_PAGES);
    return new Uint8Array(this.backing.ram[w], (pfn % WINDOW_PAGES) * PAGE_SIZE, PAGE_SIZE);
  }

  // log-dirty, as the host's memory-tracker would drive it
  logDirtyEnable(): void {
    this.backing.dirty.fill(0);
    Atomics.store(this.backing.control, CONTROL.FAULT_COUNT, 0);
    Atomics.store(this.backing.control, CONTROL.LOG_DIRTY, 1);
  }

  logDirtyDisable(): void {
    Atomics.store(this.backing.control, CONTROL.LOG_DIRTY, 0);
  }

  /** CLEAN: takes the dirty pfns and resets the bitmap. */
  logDirtyClean(): number[] {
    const out: number[] = [];
    const dirty = this.backing.dirty;
    for (let w = 0; w < dirty.length; w++) {
      let bits = Atomics.exchange(dirty, w, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        const pfn = (w << 5) | b;
        if (pfn < this.backing.maxPages) out.push(pfn);
        bits &= bits - 1;
      }
    }
    Atomics.store(this.backing.control, CONTROL.FAULT_COUNT, 0);
    return out;
  }

  /** Copies a page (if populated here) into `dst`, populating it there. */
  copyPageTo(dst: TestPlatform, pfn: number): void {
    if (!this.isPopulated(pfn)) return;
    dst.setPopulated(pfn, true);
    dst.pageBytes(pfn).set(this.pageBytes(pfn));
  }
}
