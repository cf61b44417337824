// kv: a key-value cache in the style of memcached/Redis, with a TCP service (kv-protocol.ts) and a
// built-in client that keeps it busy.
//
// The store (kv-store.ts) fills the workload's share of memory: (1 - freeFraction) of the guest.
// 90% of its records are preloaded with the built-in client's data; the rest is room for keys
// that network clients SET (which are never evicted, so they survive migration).
// Each step is one built-in client request pair: a SET of an internal key chosen by the two-tier
// model and a GET of another one that is checked against its checksum and shadow version; plus a
// scrub of two records, so a stale or corrupt page anywhere in the store is eventually counted.
//
// Defaults, calibrated against the memcached dirtying curve of shared/reference/literature.md
// §5a/§5b (Gudkov: unique dirty pages 0.92 / 1.44 / 2.05 / 3.08 / 5.48% of memory after
// 0.5 / 1 / 2 / 4 / 10 s) with §5c's kv-cache shape (40% of memory is data: freeFraction 0.6):
//  - hotSetFraction 0.05 of the data (§5c: hot set 2% of memory = 5% of a 40% data set);
//  - zipfS 0.99 inside the hot set (YCSB's zipfian constant, within §5b's recipe of 0.9-1.4);
//  - 88% of operations go to the hot set, the rest uniform over all data (§5b's two tiers);
//  - writeRate 0.0335 SETs/s per guest page (2,200/s at 256 MiB; one SET dirties one record
//    page). Measured with libs/guest/bench/dirty-profile.ts at 256 MiB: 0.79 / 1.31 / 2.05 /
//    3.10 / 5.53% unique dirty after 0.5 / 1 / 2 / 4 / 10 s. (§5b's uniform two-tier fit needs
//    2% of pages/s with 83% hot; the Zipf skew inside the hot set needs more writes for the same
//    curve.)

import type { WorkloadSpec } from '@ferry/hypervisor';
import type { GuestOs } from '../guest-os';
import { kvKeyProblem, kvValueProblem } from '../kv-protocol';
import { Popularity } from '../popularity';
import { KvStore } from './kv-store';
import { orDefault, type Workload, type WorkloadProgram } from './workload';

const R_SCRUB = 0;
const SCRUB_PER_STEP = 2;

export interface KvParams {
  rate: number;
  hotSetFraction: number;
  zipfS: number;
  hotShare: number;
  phaseSeconds: number;
}

export function kvParams(spec: WorkloadSpec, maxPages: number): KvParams {
  return {
    rate: orDefault(spec.writeRate, Math.max(20, Math.round(maxPages * 0.0335))),
    hotSetFraction: Math.min(1, orDefault(spec.hotSetFraction, 0.05)),
    zipfS: orDefault(spec.zipfS, 0.99),
    hotShare: 0.88,
    phaseSeconds: orDefault(spec.phaseSeconds, 0),
  };
}

class Kv implements Workload {
  readonly kind = 'kv' as const;
  readonly rate: number;
  private readonly popularity: Popularity;
  private skipped = 0;

  constructor(
    private readonly os: GuestOs,
    private readonly store: KvStore,
    private readonly params: KvParams,
  ) {
    this.rate = params.rate;
    this.popularity = new Popularity({
      items: Math.max(1, store.internalKeys),
      hotFraction: params.hotSetFraction,
      zipfS: params.zipfS,
      hotShare: params.hotShare,
    });
  }

  step(): void {
    const { os, store } = this;
    const phase = os.phase(this.params.phaseSeconds);
    const key = this.popularity.pick(os.prng, phase);
    const written = store.updateInternal(key);
    if (written === 'skipped') this.skipped++;
    else if (written === 'stale') os.countError(`kv record ${key} was stale or corrupt when rewritten`);
    const read = this.popularity.pick(os.prng, phase);
    if (!store.verifyRecord(read)) os.countError(`kv record ${read} is stale or corrupt`);
    const { vcpu } = os;
    for (let i = 0; i < SCRUB_PER_STEP; i++) {
      const s = vcpu.reg(R_SCRUB) % store.capacity;
      vcpu.setReg(R_SCRUB, s + 1);
      if (!store.verifyRecord(s)) os.countError(`kv record ${s} is stale or corrupt (scrub)`);
    }
  }

  handleRequest(line: string): string {
    const space = line.indexOf(' ');
    const command = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const rest = space < 0 ? '' : line.slice(space + 1);
    switch (command) {
      case 'PING':
        return 'PONG';
      case 'STATS':
        return `STATS ${JSON.stringify({ ops: this.os.ops, errors: this.os.errors, ...this.store.counters() })}`;
      case 'GET':
      case 'DEL': {
        const problem = kvKeyProblem(rest);
        if (problem) return `ERR ${problem}`;
        const key = Buffer.from(rest, 'utf8');
        if (command === 'DEL') return this.store.del(key) ? 'DELETED' : 'NOT_FOUND';
        const got = this.store.get(key);
        if (!got.found) return 'NOT_FOUND';
        if (got.corrupt) {
          this.os.countError(`kv GET ${rest}: record is stale or corrupt`);
          return 'ERR corrupt record';
        }
        const bytes = Buffer.from(got.value.buffer, got.value.byteOffset, got.value.byteLength);
        // Built-in values are binary: they go out in base64 so they stay on one line.
        return `VALUE ${bytes.toString(got.internal ? 'base64' : 'utf8')}`;
      }
      case 'SET': {
        const sep = rest.indexOf(' ');
        const keyText = sep < 0 ? rest : rest.slice(0, sep);
        const valueText = sep < 0 ? '' : rest.slice(sep + 1);
        const problem = kvKeyProblem(keyText) ?? kvValueProblem(valueText);
        if (problem) return `ERR ${problem}`;
        return this.store.set(Buffer.from(keyText, 'utf8'), Buffer.from(valueText, 'utf8')) ? 'OK' : 'ERR store full';
      }
      default:
        return 'ERR unknown command';
    }
  }

  stats(): Record<string, number | string> {
    return { ...this.store.counters(), internal_skipped: this.skipped };
  }

  verifyAll(): number {
    let bad = 0;
    for (let id = 0; id < this.store.capacity; id++) {
      if (!this.store.verifyRecord(id)) {
        bad++;
        this.os.countError(`kv record ${id} is stale or corrupt`);
      }
    }
    if (!this.store.verifyStructure()) {
      bad++;
      this.os.countError('kv hash chains disagree with the record counts');
    }
    return bad;
  }
}

export const kvProgram: WorkloadProgram = {
  async format(os) {
    const store = await KvStore.create(os, os.workloadBudgetPages());
    return { workload: new Kv(os, store, kvParams(os.spec, os.maxPages)), rootPfn: store.header };
  },
  open(os, rootPfn) {
    return new Kv(os, KvStore.open(os, rootPfn), kvParams(os.spec, os.maxPages));
  },
};
