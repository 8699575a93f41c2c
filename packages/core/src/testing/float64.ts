/**
 * The float64 reference kit: plain JavaScript loops (no tfjs) for the math every package's tests
 * re-compute independently — seeded test data, `x·Wᵀ + b`, softmax with a keep mask, activations,
 * layer/RMS norm, rotate-half rotary, attention, relative errors and central differences. Packages
 * build their own reference models (MoE, LoRRA, Q-Former…) from these. Row-major nested arrays.
 */
import { MULBERRY32_INCREMENT, mulberry32 } from '../nn/random.js';

/** Row-major matrix as nested arrays. */
export type Matrix = number[][];

/** Deterministic uniform(−scale, scale) numbers: mulberry32 counting from `seed`. */
export function randomArray(seed: number, count: number, scale = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s = (s + MULBERRY32_INCREMENT) >>> 0;
    out.push((2 * (mulberry32(s) / 4294967296) - 1) * scale);
  }
  return out;
}

/** `randomArray` as `rows` rows of `cols`. */
export function randomMatrix(seed: number, rows: number, cols: number, scale = 1): Matrix {
  return unflatten(randomArray(seed, rows * cols, scale), rows, cols);
}

/** Rows of a flat array: `[rows·cols]` → `Matrix`. */
export function unflatten(flat: readonly number[], rows: number, cols: number): Matrix {
  return Array.from({ length: rows }, (_, r) => flat.slice(r * cols, (r + 1) * cols));
}

/** `x [M, K] · Wᵀ (+ b)` with `W [N, K]` (PyTorch Linear layout) → `[M, N]`. */
export function linear64(x: Matrix, weight: Matrix, bias?: readonly number[]): Matrix {
  return x.map((row) => weight.map((w, n) => w.reduce((s, v, k) => s + v * row[k]!, 0) + (bias ? bias[n]! : 0)));
}

/** Elementwise `a + b`. */
export function add64(a: Matrix, b: Matrix): Matrix {
  return a.map((row, i) => row.map((v, j) => v + b[i]![j]!));
}

/** erf to ~1e-15: Taylor series for |x| < 3, continued fraction for erfc beyond. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 7) return Math.sign(x);
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  let fraction = ax;
  for (let k = 80; k >= 1; k--) fraction = ax + k / 2 / fraction;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / fraction;
  return Math.sign(x) * (1 - erfc);
}

/** Exact GELU `0.5·x·(1 + erf(x/√2))`. */
export function gelu64(x: number): number {
  return 0.5 * x * (1 + erf64(x / Math.SQRT2));
}

/** SiLU `x·σ(x)`. */
export function silu64(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Softmax over the kept entries of `row` (all when `keep` is absent); a row with none kept → zeros. */
export function softmax64(row: readonly number[], keep?: readonly boolean[]): number[] {
  const kept = row.map((_, i) => i).filter((i) => !keep || keep[i]);
  if (!kept.length) return row.map(() => 0);
  const max = Math.max(...kept.map((i) => row[i]!));
  const e = row.map((v, i) => (!keep || keep[i] ? Math.exp(v - max) : 0));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** LayerNorm of one row: `(x − mean)/√(var + eps)·w + b` (biased variance). */
export function layerNorm64(row: readonly number[], weight: readonly number[], bias: readonly number[] | null, eps: number): number[] {
  const D = row.length;
  const mean = row.reduce((a, b) => a + b, 0) / D;
  const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
  const inv = 1 / Math.sqrt(variance + eps);
  return row.map((v, d) => (v - mean) * inv * weight[d]! + (bias ? bias[d]! : 0));
}

/** RMSNorm of one row: `x/√(mean(x²) + eps)·w`. */
export function rmsNorm64(row: readonly number[], weight: readonly number[], eps: number): number[] {
  const inv = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / row.length + eps);
  return row.map((v, d) => v * inv * weight[d]!);
}

/** Rotate-half rotary on one head vector at position `pos`: angle_f = pos·θ^(−2f/d). */
export function rope64(x: readonly number[], pos: number, theta: number): number[] {
  const d = x.length;
  const half = d / 2;
  return x.map((v, i) => {
    const f = i % half;
    const angle = pos * Math.pow(theta, (-2 * f) / d);
    const rotated = i < half ? -x[i + half]! : x[i - half]!;
    return v * Math.cos(angle) + rotated * Math.sin(angle);
  });
}

/**
 * One head's attention: `softmax(q·kᵀ·scale over allowed keys)·v` for `q [Lq, d]`, `k [Lk, d]`,
 * `v [Lk, dv]`; `allowed(i, j)` (default all) masks keys; fully masked rows give zeros.
 * Returns the output `[Lq, dv]` and the probabilities `[Lq, Lk]`.
 */
export function attention64(
  q: Matrix,
  k: Matrix,
  v: Matrix,
  options: { scale?: number; allowed?: (i: number, j: number) => boolean } = {},
): { output: Matrix; probs: Matrix } {
  const scale = options.scale ?? 1 / Math.sqrt(q[0]!.length);
  const probs = q.map((qi, i) =>
    softmax64(
      k.map((kj) => kj.reduce((s, val, e) => s + val * qi[e]!, 0) * scale),
      options.allowed ? k.map((_, j) => options.allowed!(i, j)) : undefined,
    ),
  );
  const output = probs.map((p) => v[0]!.map((_, e) => p.reduce((s, pj, j) => s + pj * v[j]![e]!, 0)));
  return { output, probs };
}

/** Max |a − b| / max(|b|, tiny) over nested arrays. */
export function maxRelativeError(actual: unknown, expected: unknown): number {
  const a = (actual as number[]).flat(Infinity as 1) as number[];
  const e = (expected as number[]).flat(Infinity as 1) as number[];
  if (a.length !== e.length) throw new Error(`maxRelativeError: length mismatch ${a.length} vs ${e.length}`);
  const scale = Math.max(1e-30, ...e.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!) / scale);
  return worst;
}

/** Flat float64 values by name (reference layout for parameters). */
export type FlatValues = Map<string, number[]>;

/**
 * Central differences `(f(x + ε·eᵢ) − f(x − ε·eᵢ)) / 2ε` of a float64 function of named flat
 * arrays, for every element of every named array (ε = 1e-6: truncation ~1e-12, rounding ~1e-10).
 */
export function centralDifferences64(f: (values: FlatValues) => number, values: FlatValues, epsilon = 1e-6): FlatValues {
  const out: FlatValues = new Map();
  for (const [name, array] of values) {
    const grad = new Array<number>(array.length);
    for (let i = 0; i < array.length; i++) {
      const x = array[i]!;
      array[i] = x + epsilon;
      const plus = f(values);
      array[i] = x - epsilon;
      const minus = f(values);
      array[i] = x;
      grad[i] = (plus - minus) / (2 * epsilon);
    }
    out.set(name, grad);
  }
  return out;
}
