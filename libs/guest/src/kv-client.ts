// A client for the kv guest's line protocol (kv-protocol.ts) and a load generator that checks the
// guest keeps every write it acknowledged, across migrations.

import { connect, type Socket } from 'node:net';
import { kvKeyProblem, kvValueProblem } from './kv-protocol';
import { TokenBucket } from './token-bucket';

export type KvErrorCode = 'ECONNECT' | 'ECLOSED' | 'ETIMEDOUT' | 'ESERVER' | 'EPROTO';

export class KvError extends Error {
  constructor(
    readonly code: KvErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KvError';
  }
}

export interface KvClientOptions {
  /** A request without a reply for this long fails and the connection is closed. Default 5000. */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new KvError('ECONNECT', `bad address "${address}" (want host:port)`);
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

/** One TCP connection. Requests may be pipelined: the guest answers a connection's lines in order. */
export class KvClient {
  private readonly pending: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  private buffer = '';
  private closedError: KvError | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly requestTimeoutMs: number;

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
    options: KvClientOptions,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new KvError('ECLOSED', `connection to ${address} failed: ${err.message}`)));
    socket.on('close', () => this.fail(new KvError('ECLOSED', `connection to ${address} closed`)));
  }

  static connect(address: string, options: KvClientOptions = {}): Promise<KvClient> {
    let host: string, port: number;
    try {
      ({ host, port } = splitAddress(address));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new KvError('ECONNECT', `connect to ${address} timed out`));
      }, options.connectTimeoutMs ?? 5000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new KvError('ECONNECT', `connect to ${address} failed: ${err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new KvClient(socket, address, options));
      });
    });
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Sends one request line; resolves with the reply line. */
  request(line: string): Promise<string> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (/[\r\n]/.test(line)) return Promise.reject(new KvError('EPROTO', 'a request is one line'));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (!this.timer) this.armTimer();
      this.socket.write(line + '\n');
    });
  }

  async ping(): Promise<void> {
    const reply = await this.request('PING');
    if (reply !== 'PONG') throw new KvError('EPROTO', `PING answered "${reply}"`);
  }

  async set(key: string, value: string): Promise<void> {
    const problem = kvKeyProblem(key) ?? kvValueProblem(value);
    if (problem) throw new KvError('EPROTO', problem);
    const reply = await this.request(`SET ${key} ${value}`);
    if (reply !== 'OK') throw serverError('SET', reply);
  }

  /** The value, or null when the key is absent. */
  async get(key: string): Promise<string | null> {
    const problem = kvKeyProblem(key);
    if (problem) throw new KvError('EPROTO', problem);
    const reply = await this.request(`GET ${key}`);
    if (reply === 'NOT_FOUND') return null;
    if (reply.startsWith('VALUE ')) return reply.slice(6);
    throw serverError('GET', reply);
  }

  /** True when the key existed. */
  async del(key: string): Promise<boolean> {
    const reply = await this.request(`DEL ${key}`);
    if (reply === 'DELETED') return true;
    if (reply === 'NOT_FOUND') return false;
    throw serverError('DEL', reply);
  }

  async stats(): Promise<Record<string, number>> {
    const reply = await this.request('STATS');
    if (!reply.startsWith('STATS ')) throw serverError('STATS', reply);
    return JSON.parse(reply.slice(6)) as Record<string, number>;
  }

  close(): void {
    this.socket.destroy();
    this.fail(new KvError('ECLOSED', 'client closed'));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      const waiter = this.pending.shift();
      if (!waiter) {
        this.socket.destroy();
        this.fail(new KvError('EPROTO', `unexpected reply "${line}"`));
        return;
      }
      waiter.resolve(line);
      this.armTimer();
    }
  }

  /** One timer for the oldest outstanding request. */
  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0 || this.closedError) return;
    this.timer = setTimeout(() => {
      this.socket.destroy();
      this.fail(new KvError('ETIMEDOUT', `no reply from ${this.address} in ${this.requestTimeoutMs} ms`));
    }, this.requestTimeoutMs);
  }

  private fail(err: KvError): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.closedError) this.closedError = err;
    const waiters = this.pending.splice(0);
    for (const w of waiters) w.reject(this.closedError);
  }
}

function serverError(what: string, reply: string): KvError {
  return new KvError(reply.startsWith('ERR ') ? 'ESERVER' : 'EPROTO', `${what}: ${reply}`);
}

// ---------------------------------------------------------------------------------------------

export interface LoadGeneratorOptions {
  /** The guest's current "host:port" (e.g. read from data/service-address); null while unknown. */
  resolveAddress: () => string | null | Promise<string | null>;
  /** SETs per second. Default 200. */
  writeRate?: number;
  /** GETs of earlier acknowledged keys per SET. Default 1. */
  readsPerWrite?: number;
  /** Prefix of the unique keys. Default "lg<random>". */
  keyPrefix?: string;
  /** Bytes per value (8..416). Default 64. */
  valueBytes?: number;
  requestTimeoutMs?: number;
  /** First reconnect delay, doubled per failure up to maxReconnectDelayMs. Defaults 50 / 1000. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

export interface LoadStats {
  /** Requests sent. */
  requests: number;
  /** Requests that failed (connection lost, timeout, ERR reply). */
  errors: number;
  /** SETs the guest acknowledged with OK. */
  acked_writes: number;
  /** Reads of an acknowledged key that came back missing or different. */
  wrong_reads: number;
  /** Longest time without a successful reply, ms (including an outage still going on). */
  max_gap_ms: number;
  reconnects: number;
  /** From verify(): acknowledged writes that are not readable with their value. -1 before verify(). */
  lost_writes: number;
}

export class LoadGenerator {
  private readonly opts: Required<Omit<LoadGeneratorOptions, 'resolveAddress'>> & Pick<LoadGeneratorOptions, 'resolveAddress'>;
  private client: KvClient | null = null;
  private stopped = true;
  private loop: Promise<void> | null = null;
  private wakeSleep: (() => void) | null = null;
  private nextIndex = 0;
  private lastSuccess = 0;
  private readonly acked: number[] = [];
  private readonly ackWaiters: { n: number; resolve: () => void }[] = [];
  private rng = 0x2545f491;
  private readonly counters: LoadStats = {
    requests: 0,
    errors: 0,
    acked_writes: 0,
    wrong_reads: 0,
    max_gap_ms: 0,
    reconnects: 0,
    lost_writes: -1,
  };
  /** The last failure, for diagnostics. */
  lastError: Error | null = null;

  constructor(options: LoadGeneratorOptions) {
    this.opts = {
      writeRate: 200,
      readsPerWrite: 1,
      keyPrefix: `lg${Math.floor(Math.random() * 1e9).toString(36)}`,
      valueBytes: 64,
      requestTimeoutMs: 5000,
      reconnectDelayMs: 50,
      maxReconnectDelayMs: 1000,
      ...options,
    };
    if (!(this.opts.valueBytes >= 8 && this.opts.valueBytes <= 416)) throw new Error('valueBytes must be 8..416');
    const problem = kvKeyProblem(`${this.opts.keyPrefix}:0000000000`);
    if (problem) throw new Error(`keyPrefix: ${problem}`);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lastSuccess = performance.now();
    this.loop = this.run();
  }

  /** Stops sending; resolves when the last request has finished. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wakeSleep?.();
    await this.loop;
    this.notePossibleGap(performance.now());
    this.client?.close();
    this.client = null;
  }

  stats(): LoadStats {
    const s = { ...this.counters };
    if (!this.stopped) s.max_gap_ms = Math.max(s.max_gap_ms, performance.now() - this.lastSuccess);
    s.max_gap_ms = Math.round(s.max_gap_ms);
    return s;
  }

  /** Resolves once at least n writes have been acknowledged. */
  whenAcked(n: number): Promise<void> {
    if (this.acked.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push({ n, resolve }));
  }

  /** The key and value of write i. */
  keyOf(i: number): string {
    return `${this.opts.keyPrefix}:${i}`;
  }

  valueOf(i: number): string {
    const head = `v${i}.`;
    let h = Math.imul(i ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
    let out = head;
    while (out.length < this.opts.valueBytes) {
      h = Math.imul(h ^ (h >>> 15), 0x85ebca77) >>> 0;
      out += h.toString(36);
    }
    return out.slice(0, this.opts.valueBytes);
  }

  /**
   * After stop(): reads back every acknowledged write (reconnecting as needed, for up to
   * `timeoutMs`) and sets lost_writes to those missing or different.
   */
  async verify(timeoutMs = 30_000): Promise<LoadStats> {
    if (!this.stopped) throw new Error('stop the load generator before verify()');
    const deadline = performance.now() + timeoutMs;
    let lost = 0;
    let i = 0;
    const BATCH = 64;
    let client: KvClient | null = null;
    let delay = this.opts.reconnectDelayMs;
    while (i < this.acked.length) {
      if (performance.now() > deadline) throw new Error(`verify: gave up after ${timeoutMs} ms with ${this.acked.length - i} writes unchecked`);
      try {
        if (!client || client.closed) client = await this.connectNow();
        const batch = this.acked.slice(i, i + BATCH);
        const c: KvClient = client;
        const values = await Promise.all(batch.map((k) => c.get(this.keyOf(k))));
        for (let j = 0; j < batch.length; j++) if (values[j] !== this.valueOf(batch[j])) lost++;
        i += batch.length;
        delay = this.opts.reconnectDelayMs;
      } catch (err) {
        this.lastError = err as Error;
        client?.close();
        client = null;
        await sleep(delay);
        delay = Math.min(delay * 2, this.opts.maxReconnectDelayMs);
      }
    }
    client?.close();
    this.counters.lost_writes = lost;
    return this.stats();
  }

  private async connectNow(): Promise<KvClient> {
    const address = await this.opts.resolveAddress();
    if (!address) throw new KvError('ECONNECT', 'the guest has no service address yet');
    return KvClient.connect(address, { requestTimeoutMs: this.opts.requestTimeoutMs });
  }

  private async run(): Promise<void> {
    const bucket = new TokenBucket(this.opts.writeRate * (1 + this.opts.readsPerWrite), Math.max(1, this.opts.writeRate / 50), performance.now());
    let delay = this.opts.reconnectDelayMs;
    let opCount = 0;
    while (!this.stopped) {
      if (!this.client || this.client.closed) {
        try {
          const hadClient = this.client !== null;
          this.client = await this.connectNow();
          if (hadClient) this.counters.reconnects++;
          delay = this.opts.reconnectDelayMs;
        } catch (err) {
          this.lastError = err as Error;
          await this.sleepUnlessStopped(delay);
          delay = Math.min(delay * 2, this.opts.maxReconnectDelayMs);
          continue;
        }
      }
      const wait = bucket.msUntilNext(performance.now());
      if (wait > 0) {
        await this.sleepUnlessStopped(Math.max(1, Math.ceil(wait)));
        continue;
      }
      bucket.take(performance.now(), 1);
      const isWrite = this.acked.length === 0 || opCount % (1 + this.opts.readsPerWrite) === 0;
      opCount++;
      this.counters.requests++;
      const client = this.client;
      try {
        if (isWrite) {
          const i = this.nextIndex++;
          await client.set(this.keyOf(i), this.valueOf(i));
          this.acked.push(i);
          this.counters.acked_writes++;
          this.releaseAckWaiters();
        } else {
          const k = this.acked[this.nextRandom() % this.acked.length];
          const v = await client.get(this.keyOf(k));
          if (v !== this.valueOf(k)) this.counters.wrong_reads++;
        }
        this.noteSuccess();
      } catch (err) {
        this.lastError = err as Error;
        this.counters.errors++;
        client.close();
        // Keep the (closed) client so the next connection counts as a reconnect.
        await this.sleepUnlessStopped(delay);
        delay = Math.min(delay * 2, this.opts.maxReconnectDelayMs);
      }
    }
  }

  private noteSuccess(): void {
    const now = performance.now();
    this.notePossibleGap(now);
    this.lastSuccess = now;
  }

  private notePossibleGap(now: number): void {
    this.counters.max_gap_ms = Math.max(this.counters.max_gap_ms, now - this.lastSuccess);
  }

  private releaseAckWaiters(): void {
    for (let i = this.ackWaiters.length - 1; i >= 0; i--) {
      if (this.acked.length >= this.ackWaiters[i].n) {
        this.ackWaiters[i].resolve();
        this.ackWaiters.splice(i, 1);
      }
    }
  }

  private nextRandom(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return x >>> 0;
  }

  private sleepUnlessStopped(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
