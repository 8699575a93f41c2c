/**
 * Confidence intervals and verdicts for the examples' experiments.
 *
 * An experiment scores every held-out question once per training seed, for each recipe, on the SAME
 * questions and seeds (paired). Its uncertainty has two sources: which questions were drawn and which
 * seeds (data order, initialisation) were drawn. The paired bootstrap here resamples both, hierarchically:
 *
 *   repeat R times:
 *     draw S seeds with replacement from the S seeds;
 *     for each drawn seed, draw Q question indices with replacement (the same indices for both recipes);
 *     statistic = mean over the drawn (seed, question) cells   (for a, b and the difference a − b)
 *   CI = the (α/2, 1 − α/2) percentiles of the R statistics (percentile bootstrap).
 *
 * Using the same draws for both recipes keeps the pairing: a question that is hard for both cancels
 * in the difference, so the difference's interval is narrower than the two cells' intervals suggest.
 */
import { createRng } from '@mllm/core';

/** A point estimate with its confidence interval. */
export interface Interval {
  /** The statistic on the data as observed (mean over seeds and questions). */
  estimate: number;
  low: number;
  high: number;
}

/** Scores of one cell: `scores[s][q]` = score of question `q` under seed `s` (e.g. 1 = correct, 0 = wrong). */
export type SeedQuestionScores = readonly (readonly number[])[];

export interface BootstrapOptions {
  /** Bootstrap resamples (default 2000). */
  resamples?: number;
  /** Seed of the resampling RNG (default 0): the same data and seed give the same interval. */
  seed?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

export interface PairedBootstrapResult {
  a: Interval;
  b: Interval;
  /** `a − b`, paired (same resampled seeds and questions for both). */
  difference: Interval;
  seeds: number;
  questions: number;
  resamples: number;
  level: number;
}

function checkScores(name: string, scores: SeedQuestionScores): void {
  if (!Array.isArray(scores) || scores.length === 0) throw new Error(`pairedBootstrap: ${name} must be a non-empty array of seeds, got ${JSON.stringify(scores)}`);
  const q = scores[0]?.length;
  scores.forEach((row, s) => {
    if (!Array.isArray(row) || row.length === 0 || row.length !== q) {
      throw new Error(`pairedBootstrap: ${name}[${s}] must hold ${q} question scores (every seed scores the same questions), got ${Array.isArray(row) ? row.length : typeof row}`);
    }
    const bad = row.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) throw new Error(`pairedBootstrap: ${name}[${s}][${bad}] must be a finite number, got ${String(row[bad])}`);
  });
}

/** Mean over every (seed, question) cell. */
export function meanOfScores(scores: SeedQuestionScores): number {
  let sum = 0;
  let n = 0;
  for (const row of scores) for (const v of row) (sum += v), n++;
  return sum / n;
}

/**
 * The bootstrap distribution itself: `resamples` values of (mean a, mean b, mean a − b), drawn as the
 * module comment describes. `pairedBootstrap` summarises it; tests compare it with exact enumeration.
 */
export function bootstrapDraws(a: SeedQuestionScores, b: SeedQuestionScores, options: BootstrapOptions = {}): { a: Float64Array; b: Float64Array; difference: Float64Array } {
  checkScores('a', a);
  checkScores('b', b);
  if (a.length !== b.length || a[0].length !== b[0].length) {
    throw new Error(`pairedBootstrap: a and b must be paired (same seeds × questions), got ${a.length}×${a[0].length} and ${b.length}×${b[0].length}`);
  }
  const resamples = options.resamples ?? 2000;
  if (!Number.isInteger(resamples) || resamples < 1) throw new Error(`pairedBootstrap: options.resamples must be a positive integer, got ${resamples}`);
  const rng = createRng(options.seed ?? 0);
  const S = a.length;
  const Q = a[0].length;
  const outA = new Float64Array(resamples);
  const outB = new Float64Array(resamples);
  const outD = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sumA = 0;
    let sumB = 0;
    for (let i = 0; i < S; i++) {
      const s = Math.floor(rng() * S); // a seed, with replacement
      const rowA = a[s];
      const rowB = b[s];
      for (let j = 0; j < Q; j++) {
        const q = Math.floor(rng() * Q); // a question of that seed, with replacement (same for a and b)
        sumA += rowA[q];
        sumB += rowB[q];
      }
    }
    outA[r] = sumA / (S * Q);
    outB[r] = sumB / (S * Q);
    outD[r] = (sumA - sumB) / (S * Q);
  }
  return { a: outA, b: outB, difference: outD };
}

/** The p-quantile of sorted values (linear interpolation between order statistics, as numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('quantileSorted: no values');
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function intervalOf(estimate: number, draws: Float64Array, level: number): Interval {
  const sorted = Float64Array.from(draws).sort();
  return { estimate, low: quantileSorted(sorted, (1 - level) / 2), high: quantileSorted(sorted, 1 - (1 - level) / 2) };
}

/**
 * Paired percentile-bootstrap intervals over seeds and questions for two recipes scored on the same
 * questions and seeds: each cell's mean and the paired difference `a − b`. Deterministic for a given
 * `options.seed`.
 */
export function pairedBootstrap(a: SeedQuestionScores, b: SeedQuestionScores, options: BootstrapOptions = {}): PairedBootstrapResult {
  const level = options.level ?? 0.95;
  if (!(level > 0 && level < 1)) throw new Error(`pairedBootstrap: options.level must be in (0, 1), got ${level}`);
  const draws = bootstrapDraws(a, b, options);
  const meanA = meanOfScores(a);
  const meanB = meanOfScores(b);
  return {
    a: intervalOf(meanA, draws.a, level),
    b: intervalOf(meanB, draws.b, level),
    difference: intervalOf(meanA - meanB, draws.difference, level),
    seeds: a.length,
    questions: a[0].length,
    resamples: draws.a.length,
    level,
  };
}

/**
 * The percentile-bootstrap interval of one recipe's mean score (a table cell), over seeds and questions
 * as `pairedBootstrap` resamples them. The draws depend only on the shape and `options.seed`, so a cell
 * equals the `a` / `b` interval any comparison of that recipe reports.
 */
export function bootstrapInterval(scores: SeedQuestionScores, options: BootstrapOptions = {}): Interval {
  return pairedBootstrap(scores, scores, options).a;
}

/** What an experiment says about a claim. */
export type Verdict = 'reproduced' | 'not reproduced' | 'inconclusive at this budget';

/**
 * The verdict on a claim "the method's score is higher (`direction: 'higher'`) / lower than the
 * control's", from the CI of the paired difference method − control:
 *
 * - the whole interval on the claimed side of 0 → `reproduced`;
 * - the whole interval on the other side of 0 → `not reproduced` (the opposite effect is measured);
 * - with `smallestEffect` > 0 given: the interval excludes every effect at least that large in the
 *   claimed direction → `not reproduced` (no effect of a size that matters);
 * - otherwise → `inconclusive at this budget` (more questions or seeds could still decide).
 */
export function verdictOf(difference: Interval, direction: 'higher' | 'lower', smallestEffect?: number): Verdict {
  if (smallestEffect !== undefined && !(smallestEffect > 0)) throw new Error(`verdictOf: smallestEffect must be > 0, got ${smallestEffect}`);
  const sign = direction === 'higher' ? 1 : -1;
  // Map the interval to the claim's orientation: positive = the claimed direction.
  const low = Math.min(sign * difference.low, sign * difference.high);
  const high = Math.max(sign * difference.low, sign * difference.high);
  if (low > 0) return 'reproduced';
  if (high < 0) return 'not reproduced';
  if (smallestEffect !== undefined && high < smallestEffect) return 'not reproduced';
  return 'inconclusive at this budget';
}

/** Below this many seeds a claims table warns that its intervals understate the seed-to-seed variance. */
export const FEW_SEEDS = 5;

/**
 * The warning for runs with few seeds (empty from `FEW_SEEDS` on): resampling N seeds with replacement
 * gives only C(2N − 1, N) different seed sets (3 for 2 seeds), so the interval leaves out most of the
 * variance between seeds. `fullSeeds` is the seed count of the budget the docs report.
 */
export function fewSeedsWarning(seeds: number, fullSeeds: number): string {
  if (seeds >= FEW_SEEDS) return '';
  let sets = 1;
  for (let k = 1; k <= seeds; k++) sets = (sets * (seeds - 1 + k)) / k; // C(2N − 1, N) = Π (N − 1 + k) / k
  return `\n\nWith ${seeds} seed(s) the bootstrap draws only ${Math.round(sets)} different seed set(s) and understates the variance between seeds: ` +
    `read these verdicts as a smoke check (\`--budget full\` runs ${fullSeeds} seeds).`;
}

/** `52.3 [48.1, 56.0]`: an interval in percent (values in [0, 1]), signed with `signed`. */
export function formatInterval(interval: Interval, options: { signed?: boolean; digits?: number } = {}): string {
  const d = options.digits ?? 1;
  const f = (v: number) => `${options.signed && v > 0 ? '+' : ''}${(100 * v).toFixed(d)}`;
  return `${f(interval.estimate)} [${f(interval.low)}, ${f(interval.high)}]`;
}
