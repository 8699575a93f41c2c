import { describe, expect, it } from 'vitest';
import { bootstrapDraws, bootstrapInterval, FEW_SEEDS, fewSeedsWarning, formatInterval, pairedBootstrap, quantileSorted, verdictOf } from './stats.js';

/**
 * Exact bootstrap distribution of the paired difference by enumeration (independent of the sampler):
 * every ordered choice of S seeds, then for each chosen seed every ordered choice of Q questions, all
 * equally likely. Returns value → probability.
 */
function exactDifferenceDistribution(a: number[][], b: number[][]): Map<number, number> {
  const S = a.length;
  const Q = a[0].length;
  const tuples = (n: number, k: number): number[][] => (k === 0 ? [[]] : tuples(n, k - 1).flatMap((t) => [...Array(n).keys()].map((i) => [...t, i])));
  const seedChoices = tuples(S, S);
  const questionChoices = tuples(Q, Q);
  const out = new Map<number, number>();
  for (const seeds of seedChoices) {
    // The sum over the drawn seeds is a convolution of each seed's distribution of its question sum.
    let partial = new Map<number, number>([[0, 1]]);
    for (const s of seeds) {
      const next = new Map<number, number>();
      for (const [sum, p] of partial) {
        for (const qs of questionChoices) {
          const v = sum + qs.reduce((acc, q) => acc + a[s][q] - b[s][q], 0);
          next.set(v, (next.get(v) ?? 0) + p / questionChoices.length);
        }
      }
      partial = next;
    }
    for (const [sum, p] of partial) {
      const key = Math.round((sum / (S * Q)) * 1e9) / 1e9;
      out.set(key, (out.get(key) ?? 0) + p / seedChoices.length);
    }
  }
  return out;
}

describe('paired bootstrap over seeds and questions', () => {
  it('draws the exact bootstrap distribution (2 seeds × 3 questions, enumerated)', () => {
    const a = [[1, 0, 1], [1, 1, 0]];
    const b = [[0, 0, 1], [1, 0, 0]];
    const exact = exactDifferenceDistribution(a, b);
    const R = 60000;
    const draws = bootstrapDraws(a, b, { resamples: R, seed: 3 });
    const observed = new Map<number, number>();
    for (const d of draws.difference) {
      const key = Math.round(d * 1e9) / 1e9;
      observed.set(key, (observed.get(key) ?? 0) + 1 / R);
    }
    for (const key of observed.keys()) expect(exact.has(key), `value ${key} is possible`).toBe(true);
    for (const [key, p] of exact) {
      // Binomial standard error of a frequency is ≤ 0.5/√R ≈ 0.002: 4 standard errors.
      expect(Math.abs((observed.get(key) ?? 0) - p), `P(diff = ${key})`).toBeLessThan(0.009);
    }
    // And the CI's ends are quantiles of that distribution.
    const result = pairedBootstrap(a, b, { resamples: R, seed: 3 });
    const sortedExact = [...exact.entries()].sort((x, y) => x[0] - y[0]);
    const cdfInverse = (p: number) => {
      let acc = 0;
      for (const [v, w] of sortedExact) if ((acc += w) >= p) return v;
      return sortedExact[sortedExact.length - 1][0];
    };
    expect(result.difference.low).toBeCloseTo(cdfInverse(0.025), 6);
    expect(result.difference.high).toBeCloseTo(cdfInverse(0.975), 6);
    expect(result.difference.estimate).toBeCloseTo(2 / 6, 12);
  });

  it('agrees with the normal approximation on a large one-seed case', () => {
    const Q = 2000;
    const p = 0.3;
    const scores = [Array.from({ length: Q }, (_, q) => ((q * 7919) % 1000 < p * 1000 ? 1 : 0))];
    const zeros = [new Array<number>(Q).fill(0)];
    const result = pairedBootstrap(scores, zeros, { resamples: 4000, seed: 1 });
    const half = 1.959964 * Math.sqrt((p * (1 - p)) / Q);
    expect(result.a.estimate).toBeCloseTo(p, 12);
    expect(result.a.low).toBeCloseTo(p - half, 2);
    expect(result.a.high).toBeCloseTo(p + half, 2);
    expect(Math.abs(result.a.high - result.a.low - 2 * half)).toBeLessThan(0.1 * 2 * half);
    expect(result.difference).toEqual(result.a); // b ≡ 0
    // One recipe's cell: the same draws, so the same interval as that recipe's side of any comparison.
    expect(bootstrapInterval(scores, { resamples: 4000, seed: 1 })).toEqual(result.a);
  });

  it('keeps the pairing: identical recipes differ by exactly 0, a shifted one by its shift', () => {
    const a = [[1, 0, 1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 1, 0, 1, 1], [1, 1, 1, 0, 0, 0, 1, 0]];
    const same = pairedBootstrap(a, a, { resamples: 500 });
    expect(same.difference).toEqual({ estimate: 0, low: 0, high: 0 });
    expect(same.a.high - same.a.low).toBeGreaterThan(0.1); // the cells themselves are uncertain
    const shifted = pairedBootstrap(a.map((r) => r.map((v) => v + 0.25)), a, { resamples: 500 });
    expect(shifted.difference.low).toBeCloseTo(0.25, 12);
    expect(shifted.difference.high).toBeCloseTo(0.25, 12);
  });

  it('resamples seeds: a seed-level offset widens the interval beyond the question-only one', () => {
    const Q = 200;
    const base = Array.from({ length: Q }, (_, q) => (q % 2 === 0 ? 1 : 0));
    const noSeedEffect = [base, base, base];
    const seedEffect = [base.map((v) => v + 0.3), base, base.map((v) => v - 0.3)];
    const width = (s: number[][]) => {
      const r = pairedBootstrap(s, [new Array<number>(Q).fill(0), new Array<number>(Q).fill(0), new Array<number>(Q).fill(0)], { resamples: 2000, seed: 5 });
      return r.a.high - r.a.low;
    };
    expect(width(seedEffect)).toBeGreaterThan(2 * width(noSeedEffect));
  });

  it('is deterministic for a seed and names bad input', () => {
    const a = [[1, 0, 1, 0, 1]];
    const b = [[0, 0, 1, 1, 0]];
    expect(pairedBootstrap(a, b, { seed: 9 })).toEqual(pairedBootstrap(a, b, { seed: 9 }));
    expect(bootstrapDraws(a, b, { seed: 9, resamples: 50 }).difference).not.toEqual(bootstrapDraws(a, b, { seed: 10, resamples: 50 }).difference);
    expect(() => pairedBootstrap(a, [[0, 1]])).toThrow(/a and b must be paired.*1×5 and 1×2/);
    expect(() => pairedBootstrap([[1, 0], [1]], [[0, 1], [1, 1]])).toThrow(/a\[1\] must hold 2 question scores \(every seed scores the same questions\), got 1/);
    expect(() => pairedBootstrap(a, [[0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])).toThrow(/a and b must be paired.*1×5 and 2×5/);
    expect(() => pairedBootstrap([[1, NaN]], [[1, 1]])).toThrow(/a\[0\]\[1\] must be a finite number, got NaN/);
    expect(() => pairedBootstrap(a, b, { level: 95 })).toThrow(/options.level must be in \(0, 1\), got 95/);
    expect(() => pairedBootstrap(a, b, { resamples: 0 })).toThrow(/options.resamples must be a positive integer, got 0/);
  });

  it('interpolates quantiles as numpy does', () => {
    // numpy.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925]
    expect(quantileSorted([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBeCloseTo(2.5, 12);
    expect(quantileSorted([1, 2, 3, 4], 0.975)).toBeCloseTo(3.925, 12);
  });
});

describe('verdicts from the paired difference', () => {
  it('says reproduced, not reproduced or inconclusive from the interval and the claimed direction', () => {
    expect(verdictOf({ estimate: 0.05, low: 0.01, high: 0.09 }, 'higher')).toBe('reproduced');
    expect(verdictOf({ estimate: 0.05, low: 0.01, high: 0.09 }, 'lower')).toBe('not reproduced');
    expect(verdictOf({ estimate: -0.05, low: -0.09, high: -0.01 }, 'higher')).toBe('not reproduced');
    expect(verdictOf({ estimate: -0.05, low: -0.09, high: -0.01 }, 'lower')).toBe('reproduced');
    expect(verdictOf({ estimate: 0.01, low: -0.03, high: 0.05 }, 'higher')).toBe('inconclusive at this budget');
    // An interval that rules out every gain of 2 points or more: no gain that matters.
    expect(verdictOf({ estimate: 0, low: -0.01, high: 0.015 }, 'higher', 0.02)).toBe('not reproduced');
    expect(verdictOf({ estimate: 0, low: -0.01, high: 0.025 }, 'higher', 0.02)).toBe('inconclusive at this budget');
    expect(() => verdictOf({ estimate: 0, low: 0, high: 0 }, 'higher', 0)).toThrow(/smallestEffect must be > 0, got 0/);
  });

  it('formats intervals in percent', () => {
    expect(formatInterval({ estimate: 0.5234, low: 0.481, high: 0.56 })).toBe('52.3 [48.1, 56.0]');
    expect(formatInterval({ estimate: 0.02, low: -0.01, high: 0.05 }, { signed: true })).toBe('+2.0 [-1.0, +5.0]');
  });
});

describe('fewSeedsWarning', () => {
  it('counts the distinct seed multisets a bootstrap over N seeds can draw (C(2N − 1, N), by enumeration) and is silent from FEW_SEEDS on', () => {
    const multisets = (n: number): number => {
      const seen = new Set<string>();
      const walk = (picked: number[]) => {
        if (picked.length === n) return void seen.add([...picked].sort().join(','));
        for (let s = 0; s < n; s++) walk([...picked, s]);
      };
      walk([]);
      return seen.size;
    };
    for (const n of [1, 2, 3, 4]) expect(fewSeedsWarning(n, 6)).toContain(`With ${n} seed(s) the bootstrap draws only ${multisets(n)} different seed set(s)`);
    expect(fewSeedsWarning(2, 6)).toContain('`--budget full` runs 6 seeds');
    expect(fewSeedsWarning(FEW_SEEDS, 6)).toBe('');
  });
});
