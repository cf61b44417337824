// The page-streamer's end of a migration to a Xen host: what the receive session gets (pages,
// round after round, then the vCPU state) becomes Xen's stream after the xl header — the libxl
// v2 stream with the libxc v3 stream inside, pages as successive PAGE_DATA records (a pfn sent
// again later is simply written again: the last copy wins), then the x86 state records and the
// END records — written into the socket of the local xl receiver (xl-receiver.ts).
//
// The xen driver's writePages and setVcpuContext on a domain that an xl receiver is restoring
// come here, so the receive path above the driver is the same on every host. setVcpuContext
// resolves only once xl reported the domain received (restored, paused), so the acknowledged
// state batch means the target really holds the domain; a failure of xl fails that write.
//
// CPU policy records (X86_CPUID_POLICY / X86_MSR_POLICY) must precede the pages, before the state
// that carries them has arrived; they are left out, and libxc then applies the receiving host's
// policy for the domain, as for a stream from a Xen older than 4.14.

import { connect, type Socket } from 'node:net';
import { PAGE_SIZE } from '@ferry/hypervisor';
import { RoundStreamAssembler, type FinalState, type StreamPage } from '@ferry/xen-stream';
import type { XlReceiveMeta } from './xl-rendezvous';
import { unpackVcpuContext } from './vcpu-context-blob';

const READY_TIMEOUT_MS = 300_000;

export class XlRestoreFeed {
  private readonly assembler: RoundStreamAssembler;
  private verdict: { ok: true } | { ok: false; why: string } | null = null;
  private readonly waiters: Array<() => void> = [];
  private lineBuffer = '';
  /** One operation at a time: two connections of a session must not interleave records. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly meta: XlReceiveMeta,
    private readonly socket: Socket,
    xenVersion: { major: number; minor: number },
  ) {
    this.assembler = new RoundStreamAssembler(socket, { layers: 'libxl', xenVersion });
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.onLine(text));
    socket.on('error', (err) => this.settle({ ok: false, why: `the xl receiver's socket failed: ${err.message}` }));
    socket.on('close', () => {
      this.settle({ ok: false, why: 'the xl receiver closed its socket' });
      this.closed = true;
    });
  }

  static async open(meta: XlReceiveMeta, xenVersion: { major: number; minor: number }): Promise<XlRestoreFeed> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(meta.socket, () => resolve(s));
      s.once('error', reject);
    });
    const feed = new XlRestoreFeed(meta, socket, xenVersion);
    await feed.serial(() => feed.assembler.begin());
    return feed;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One batch of pages (data: pfns.length pages) as PAGE_DATA. */
  writePages(pfns: readonly number[], data: Uint8Array): Promise<void> {
    return this.serial(async () => {
      this.check();
      const pages: StreamPage[] = pfns.map((pfn, i) => ({ pfn, data: data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE) }));
      await this.assembler.addPages(pages);
      await this.assembler.endRound();
    });
  }

  /** The final state and the END records; resolves once xl has restored the domain. */
  finish(context: Uint8Array): Promise<void> {
    return this.serial(async () => {
      this.check();
      await this.assembler.finish(finalStateOf(context));
      await this.until(READY_TIMEOUT_MS);
      this.closed = true;
      this.socket.end();
    });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private check(): void {
    if (this.verdict && !this.verdict.ok) throw new Error(this.verdict.why);
    if (this.closed) throw new Error(`the stream into domain ${this.meta.domid} is finished`);
  }

  private onLine(text: string): void {
    this.lineBuffer += text;
    for (let nl = this.lineBuffer.indexOf('\n'); nl >= 0; nl = this.lineBuffer.indexOf('\n')) {
      const line = this.lineBuffer.slice(0, nl);
      this.lineBuffer = this.lineBuffer.slice(nl + 1);
      if (line === 'ready') this.settle({ ok: true });
      else if (line.startsWith('failed')) this.settle({ ok: false, why: `xl migrate-receive failed: ${line.slice('failed'.length).trim()}` });
    }
  }

  private settle(verdict: { ok: true } | { ok: false; why: string }): void {
    if (this.verdict?.ok === false) return;
    if (this.verdict?.ok && !verdict.ok && this.closed) return; // a close after success
    this.verdict = verdict;
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.verdict === null) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`xl migrate-receive did not report domain ${this.meta.domid} received within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (!this.verdict.ok) throw new Error(this.verdict.why);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** The records after the pages, out of the xen driver's vCPU context blob. */
export function finalStateOf(context: Uint8Array): FinalState {
  const ctx = unpackVcpuContext(context);
  return {
    hvmContext: ctx.hvmContext,
    hvmParams: ctx.hvmParams.map((p) => ({ index: BigInt(p.index), value: p.value })),
    tsc: { mode: ctx.tsc.mode, khz: ctx.tsc.khz, nsec: ctx.tsc.elapsedNsec, incarnation: ctx.tsc.incarnation },
  };
}
