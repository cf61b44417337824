// Zipf-distributed ranks 1..n with P(k) ∝ k^-s, sampled in O(1) without a table by rejection
// inversion (W. Hörmann and G. Derflinger, "Rejection-inversion to generate variates from monotone
// discrete distributions", ACM TOMACS 1996). The continuous density h(x) = x^-s is integrated in
// closed form (H), a point is drawn by inverting H, rounded to the nearest integer and accepted
// unless it falls in the small sliver where the integral over [k-1/2, k+1/2] overshoots h(k).

import type { Prng } from './prng';

export class ZipfSampler {
  private readonly hIntegralX1: number;
  private readonly hIntegralN: number;
  private readonly squeeze: number;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    if (!(n >= 1)) throw new Error(`Zipf needs n >= 1, got ${n}`);
    if (!(s > 0)) throw new Error(`Zipf needs an exponent > 0, got ${s}`);
    this.hIntegralX1 = this.hIntegral(1.5) - 1;
    this.hIntegralN = this.hIntegral(n + 0.5);
    this.squeeze = 2 - this.hIntegralInverse(this.hIntegral(2.5) - this.h(2));
  }

  /** A rank in 1..n; rank 1 is the most popular. */
  sample(prng: Prng): number {
    for (;;) {
      const u = this.hIntegralN + prng.nextFloat() * (this.hIntegralX1 - this.hIntegralN);
      const x = this.hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > this.n) k = this.n;
      if (k - x <= this.squeeze || u >= this.hIntegral(k + 0.5) - this.h(k)) return k;
    }
  }

  private h(x: number): number {
    return Math.exp(-this.s * Math.log(x));
  }

  /** ∫ h = (x^(1-s) - 1) / (1-s), written to stay accurate as s → 1 (where it becomes log x). */
  private hIntegral(x: number): number {
    const logX = Math.log(x);
    return expm1OverX((1 - this.s) * logX) * logX;
  }

  private hIntegralInverse(y: number): number {
    let t = y * (1 - this.s);
    if (t < -1) t = -1; // rounding can push t just past the pole of log1p
    return Math.exp(log1pOverX(t) * y);
  }
}

/** expm1(x) / x, continuous at 0. */
function expm1OverX(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + x / 3);
}

/** log1p(x) / x, continuous at 0. */
function log1pOverX(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x / 3);
}
