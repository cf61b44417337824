// xoshiro128** (Blackman & Vigna): a small, fast 32-bit generator whose four state words live in
// the vCPU registers, so a migrated guest draws the same sequence it would have drawn at home.

export const PRNG_STATE_WORDS = 4;

export class Prng {
  /** state[offset .. offset+3] are the generator's registers; they are updated in place. */
  constructor(
    private readonly state: Uint32Array,
    private readonly offset = 0,
  ) {}

  /** Seeds the registers from a 32-bit seed with splitmix32, so nearby seeds give unrelated streams. */
  static seed(state: Uint32Array, offset: number, seed: number): void {
    let z = seed >>> 0;
    for (let i = 0; i < PRNG_STATE_WORDS; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let x = z;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      x ^= x >>> 16;
      state[offset + i] = x >>> 0;
    }
    // The all-zero state is the one state xoshiro never leaves.
    if ((state[offset] | state[offset + 1] | state[offset + 2] | state[offset + 3]) === 0) state[offset] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const s = this.state;
    const o = this.offset;
    const s0 = s[o];
    const s1 = s[o + 1];
    const s2 = s[o + 2];
    const s3 = s[o + 3];
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    s[o + 1] = s1 ^ n2;
    s[o] = s0 ^ n3;
    s[o + 2] = n2 ^ t;
    s[o + 3] = (n3 << 11) | (n3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.next() / 0x100000000;
  }

  /** Uniform integer in [0, n), n ≤ 2^32. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }
}
