/**
 * Test-only: an independent float64 re-computation of the Wings math with plain JS loops
 * (no tfjs), built on core's float64 kit, plus tolerances and gradient comparison for tests.
 */
import * as tf from '@tensorflow/tfjs';
import {
  add64,
  linear64,
  randomArray,
  randomMatrix,
  rope64,
  softmax64,
  testBackend,
  unflatten,
  type FlatValues,
  type Matrix,
} from '@mllm/core/testing';

// The shared float64 kit (core's `@mllm/core/testing`), re-exported for this package's tests.
export { add64, centralDifferences64, linear64, maxRelativeError, randomArray, randomMatrix, rope64, unflatten, type FlatValues, type Matrix } from '@mllm/core/testing';

/**
 * Relative tolerance (max |error| / max |expected|) for float32 results against float64: 1e-5,
 * except WebGPU, whose sin/cos/exp (rotary, softmax) are only good to ~1e-4 relative.
 */
export const ON_WEBGPU = testBackend() === 'webgpu';
export const RELATIVE_TOLERANCE = ON_WEBGPU ? 3e-4 : 1e-5;

/** Reference weights of one learner, PyTorch layout: `A [r, H]`, `B [H, r]`. */
export interface LearnerWeights64 {
  q: [Matrix, Matrix];
  k: [Matrix, Matrix];
  v: [Matrix, Matrix];
  o: [Matrix, Matrix];
}

export function randomLearnerWeights(seed: number, H: number, r: number, scale = 0.3): LearnerWeights64 {
  const pair = (s: number): [Matrix, Matrix] => [randomMatrix(s, r, H, scale), randomMatrix(s + 1, H, r, scale)];
  return { q: pair(seed), k: pair(seed + 10), v: pair(seed + 20), o: pair(seed + 30) };
}

/** The learner weights as a reference state dict (`q_proj.0.weight`, …) with a prefix. */
export function learnerStateDict(w: LearnerWeights64, prefix = ''): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const p of ['q', 'k', 'v', 'o'] as const) {
    out.set(`${prefix}${p}_proj.0.weight`, tf.tensor2d(w[p][0]));
    out.set(`${prefix}${p}_proj.1.weight`, tf.tensor2d(w[p][1]));
  }
  return out;
}

/** Random reference-named weights for every learner (width H, rank R) and router (width MAX) of `layers`. */
export function randomAdapterDict(layers: number[], stage: 1 | 2, seed: number, H = 16, R = 3, MAX = 32): Map<string, tf.Tensor> {
  const dict = new Map<string, tf.Tensor>();
  for (const i of layers) {
    for (const [name, s] of [['attn_pool', seed + i], ['attn_t_pool', seed + 50 + i]] as const) {
      for (const [k, v] of learnerStateDict(randomLearnerWeights(s, H, R, 0.4), `model.layers.${i}.${name}.`)) dict.set(k, v);
    }
    if (stage === 2) {
      dict.set(`model.layers.${i}.reweight_module.linear.weight`, tf.tensor2d(randomMatrix(seed + 90 + i, 2, MAX, 2)));
      dict.set(`model.layers.${i}.reweight_module.linear.bias`, tf.tensor1d([0.1, -0.3]));
    }
  }
  return dict;
}

export interface LearnerCase64 {
  /** `[B][Lq][H]` */
  query: number[][][];
  /** `[B][Lk][H]` */
  source: number[][][];
  queryPositions: number[][];
  keyPositions: number[][];
  /** `[B][Lk]` */
  keyMask?: number[][];
  causalByPosition?: boolean;
  /** `[B][Lq][Lk]` */
  attendMask?: number[][][];
  fullyMaskedRows?: 'zero' | 'uniform';
}

/**
 * Float64 LoRRA: Q = X + X·A_qᵀ·B_qᵀ, K/V likewise on F, rotary, softmax over allowed keys,
 * out = O·A_oᵀ·B_oᵀ. `lowRank: false` drops the q/k/v corrections (plain cross-attention).
 */
export function lorra64(
  w: LearnerWeights64,
  heads: number,
  theta: number,
  c: LearnerCase64,
  options: { lowRank?: boolean } = {},
): number[][][] {
  const lowRank = options.lowRank ?? true;
  const proj = (x: Matrix, p: [Matrix, Matrix]) => (lowRank ? add64(x, linear64(linear64(x, p[0]), p[1])) : x);
  return c.query.map((X, b) => {
    const F = c.source[b];
    const H = X[0].length;
    const d = H / heads;
    const Q = proj(X, w.q);
    const K = proj(F, w.k);
    const V = proj(F, w.v);
    const O: Matrix = X.map(() => new Array<number>(H).fill(0));
    for (let h = 0; h < heads; h++) {
      const qh = Q.map((row, t) => rope64(row.slice(h * d, (h + 1) * d), c.queryPositions[b][t], theta));
      const kh = K.map((row, j) => rope64(row.slice(h * d, (h + 1) * d), c.keyPositions[b][j], theta));
      for (let t = 0; t < X.length; t++) {
        const allowed = kh.map((_, j) => {
          let ok = !c.keyMask || c.keyMask[b][j] !== 0;
          if (c.causalByPosition) ok = ok && c.keyPositions[b][j] <= c.queryPositions[b][t];
          if (c.attendMask) ok = ok && c.attendMask[b][t][j] !== 0;
          return ok;
        });
        const scores = kh.map((k) => k.reduce((s, v, i) => s + v * qh[t][i], 0) / Math.sqrt(d));
        // Fully masked rows: zeros, or 1/Lk over every key under 'uniform' (the reference's dtype-min mask).
        const probs = !allowed.some(Boolean) && c.fullyMaskedRows === 'uniform' ? scores.map(() => 1 / scores.length) : softmax64(scores, allowed);
        for (let i = 0; i < d; i++) {
          O[t][h * d + i] = probs.reduce((s, p, j) => s + p * V[j][h * d + i], 0);
        }
      }
    }
    return linear64(linear64(O, w.o[0]), w.o[1]);
  });
}

/** Float64 router: head-sum, first L columns of W, SiLU, softmax over 2. Returns `[B][Lq][2]`. */
export function router64(weight: Matrix, bias: number[], probs: number[][][][]): number[][][] {
  return probs.map((perHead) => {
    const Lq = perHead[0].length;
    const L = perHead[0][0].length;
    const out: number[][] = [];
    for (let t = 0; t < Lq; t++) {
      const s = new Array<number>(L).fill(0);
      for (const head of perHead) for (let j = 0; j < L; j++) s[j] += head[t][j];
      const z = [0, 1].map((o) => bias[o] + s.reduce((acc, v, j) => acc + v * weight[o][j], 0));
      const a = z.map((v) => v / (1 + Math.exp(-v)));
      const m = Math.max(...a);
      const e = a.map((v) => Math.exp(v - m));
      out.push(e.map((v) => v / (e[0] + e[1])));
    }
    return out;
  });
}

/** Random softmax rows `[B][heads][Lq][L]` (causal when `causal`). */
export function randomAttentionProbs(seed: number, B: number, heads: number, Lq: number, L: number, causal = true): number[][][][] {
  const raw = randomArray(seed, B * heads * Lq * L, 3);
  let n = 0;
  return Array.from({ length: B }, () =>
    Array.from({ length: heads }, () =>
      Array.from({ length: Lq }, (_, t) => {
        const row = Array.from({ length: L }, (_, j) => {
          const v = raw[n++];
          return causal && j > t ? 0 : Math.exp(v);
        });
        const z = row.reduce((a, v) => a + v, 0);
        return row.map((v) => v / z);
      }),
    ),
  );
}

/**
 * Gradient tolerance (max |analytic − numeric| / max |numeric| per parameter) of tfjs' float32
 * gradients against float64 central differences: 1e-5 (measured ≤ 5e-7 on cpu and wasm), WebGPU 3e-3 (its float32 sin/cos/exp).
 */
export const GRADIENT_TOLERANCE = ON_WEBGPU ? 3e-3 : 1e-5;

/** A learner's float64 weights from flat reference-layout values named `${prefix}{q,k,v,o}_proj.{0,1}.weight`. */
export function learnerFromFlat(values: FlatValues, prefix: string, H: number, r: number): LearnerWeights64 {
  const pair = (p: string): [Matrix, Matrix] => [unflatten(values.get(`${prefix}${p}_proj.0.weight`)!, r, H), unflatten(values.get(`${prefix}${p}_proj.1.weight`)!, H, r)];
  return { q: pair('q'), k: pair('k'), v: pair('v'), o: pair('o') };
}

/**
 * Compares analytic gradients (flat, reference layout) with float64 numeric ones per name: the
 * largest error relative to the largest numeric entry must stay under `tolerance`, and every
 * numeric gradient must be non-zero (max |g| > `minimum`), so the check cannot pass vacuously.
 * Returns the worst relative error.
 */
export function compareGradients(analytic: FlatValues, numeric: FlatValues, tolerance = GRADIENT_TOLERANCE, minimum = 1e-4): number {
  let worst = 0;
  const problems: string[] = [];
  for (const [name, expected] of numeric) {
    const got = analytic.get(name);
    if (!got || got.length !== expected.length) {
      problems.push(`${name}: analytic gradient ${got ? `has ${got.length} entries, expected ${expected.length}` : 'missing'}`);
      continue;
    }
    const scale = Math.max(...expected.map(Math.abs));
    if (!(scale > minimum)) problems.push(`${name}: numeric gradient is ~0 (max |g| ${scale}), the check would be vacuous`);
    const error = Math.max(...expected.map((v, i) => Math.abs(got[i] - v))) / Math.max(scale, 1e-30);
    if (!(error < tolerance)) problems.push(`${name}: relative error ${error.toExponential(2)} ≥ ${tolerance} (max |g| ${scale.toExponential(2)})`);
    worst = Math.max(worst, error);
  }
  if (problems.length) throw new Error(`gradients disagree with float64 central differences:\n  ${problems.join('\n  ')}`);
  return worst;
}
