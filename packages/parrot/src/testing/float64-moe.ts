/**
 * Test-only: an independent float64 re-computation of Parrot's MoE in plain JavaScript loops,
 * one sample at a time over its real (unpadded) text tokens, written from the reference's math
 * (`MultilingualMoE.forward`), not from this package's tfjs code, on core's float64 kit. Not exported
 * from the package.
 */

import { linear64, silu64, softmax64, type Matrix } from '@mllm/core/testing';

/** Row-major matrices as nested arrays. */
export type { Matrix };

/** Weights in the reference (PyTorch) layout: Linear weight `[out, in]`. */
export interface Float64Weights {
  gate: Matrix; // [E, D]
  experts: Array<{ gateProj: Matrix; upProj: Matrix; downProj: Matrix }>; // [I, D], [I, D], [D, I]
}

export interface Float64Options {
  alpha: number;
  useMoe: boolean;
  useResidual: boolean;
  /** Sparse top-k routing (renormalized); null = dense. */
  topK: number | null;
}

export interface Float64SampleResult {
  output: Matrix; // [N, D]
  probabilities: number[]; // [E] router softmax
  routing: number[]; // [E] weights used
  attention: number[]; // [T] over the real tokens
  assignment: number[]; // [E] 0/1 top-k (k = topK ?? 1) selection
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Indices of the k largest values (ties: lower index first). */
export function topIndices(values: readonly number[], k: number): number[] {
  return values
    .map((v, i) => [v, i] as const)
    .sort((p, q) => q[0] - p[0] || p[1] - q[1])
    .slice(0, k)
    .map(([, i]) => i);
}

/** `W [out, in] · x [in]`. */
function linear(weight: Matrix, x: readonly number[]): number[] {
  return linear64([[...x]], weight)[0]!;
}

/** One SwiGLU expert on one token: `down(silu(gate·x) ⊙ (up·x))`. */
export function expert64(e: Float64Weights['experts'][number], x: readonly number[]): number[] {
  const g = linear(e.gateProj, x);
  const u = linear(e.upProj, x);
  const h = g.map((v, i) => silu64(v) * u[i]!);
  return linear(e.downProj, h);
}

/**
 * One sample: `visual [N, D]` (row 0 = CLS), `text [T, D]` real tokens only (T may be 0).
 */
export function parrotMoE64(visual: Matrix, text: Matrix, w: Float64Weights, options: Float64Options): Float64SampleResult {
  const D = visual[0].length;
  const E = w.gate.length;
  const cls = visual[0];
  const scores = text.map((x) => dot(cls, x) / Math.sqrt(D));
  const attention = softmax64(scores);
  const pooled = new Array<number>(D).fill(0);
  text.forEach((x, t) => x.forEach((v, d) => (pooled[d] += attention[t] * v)));
  const probabilities = softmax64(linear(w.gate, pooled));
  const k = options.topK ?? 1;
  const selected = new Set(topIndices(probabilities, k));
  const assignment = probabilities.map((_, i) => (selected.has(i) ? 1 : 0));
  let routing = probabilities;
  if (options.topK !== null) {
    const kept = probabilities.map((p, i) => p * assignment[i]);
    const z = kept.reduce((a, b) => a + b, 0);
    routing = kept.map((v) => v / z);
  }
  if (!options.useMoe) return { output: visual.map((r) => [...r]), probabilities, routing, attention, assignment };
  const output = visual.map((token) => {
    const out = new Array<number>(D).fill(0);
    for (let i = 0; i < E; i++) {
      const y = expert64(w.experts[i], token);
      for (let d = 0; d < D; d++) out[d] += routing[i] * y[d];
    }
    if (options.useResidual) for (let d = 0; d < D; d++) out[d] += options.alpha * token[d];
    return out;
  });
  return { output, probabilities, routing, attention, assignment };
}

/** Switch-style load-balancing loss over samples: `E · Σ_i f_i·P_i`, f from assignments (k each). */
export function loadBalancing64(results: Float64SampleResult[], k: number): number {
  const B = results.length;
  const E = results[0].probabilities.length;
  let loss = 0;
  for (let i = 0; i < E; i++) {
    let f = 0;
    let p = 0;
    for (const r of results) {
      f += r.assignment[i];
      p += r.probabilities[i];
    }
    loss += (f / (B * k)) * (p / B);
  }
  return E * loss;
}
