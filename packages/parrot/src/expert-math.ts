/**
 * One SwiGLU expert and the routing-weighted sum, forward and backward written out explicitly.
 *
 * Shared by the main thread and the expert worker threads (`./threads`), so an expert computes
 * the same kernels in the same order wherever it runs: with the same backend the values are
 * bitwise identical.
 *
 * Kernels are in the internal `[in, out]` layout. For flattened tokens `x [M, D]`:
 *
 *   g = x·Gate  [M, I]     u = x·Up  [M, I]     h = silu(g) ⊙ u  [M, I]     y = h·Down  [M, D]
 *
 * Backward, given `dy [M, D]`:
 *
 *   dDown = hᵀ·dy                    dh = dy·Downᵀ
 *   du = dh ⊙ silu(g)                dg = dh ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g)))
 *   dGate = xᵀ·dg   dUp = xᵀ·du      dx = dg·Gateᵀ + du·Upᵀ
 *
 * Every product is a plain 2-D `matMul2d` with explicitly (tiled-)transposed operands, which is
 * the fast path on wasm (`·ᵀ` products through core's `matMul2dTransposeB`); `xᵀ` is formed once and
 * shared by all experts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { matMul2d, matMul2dTransposeB, silu, transposeLastTwo } from '@mllm/core';

/** One expert's kernels in the internal layout. */
export interface ExpertKernels {
  gate: tf.Tensor2D; // [D, I]
  up: tf.Tensor2D; // [D, I]
  down: tf.Tensor2D; // [I, D]
}

/** What one expert's backward needs from its forward. */
export interface ExpertActivations {
  gate: tf.Tensor2D; // g = x·Gate  [M, I]
  up: tf.Tensor2D; // u = x·Up    [M, I]
  output: tf.Tensor2D; // y = h·Down  [M, D]
}

/** Gradients of one expert's kernels (absent when not asked for) and its share of `dx`. */
export interface ExpertGradients {
  gate?: tf.Tensor2D; // [D, I]
  up?: tf.Tensor2D; // [D, I]
  down?: tf.Tensor2D; // [I, D]
  input: tf.Tensor2D; // [M, D]
}

/** `x [M, D]` → the expert's activations (output `y [M, D]` included). */
export function expertForward(x: tf.Tensor2D, k: ExpertKernels): ExpertActivations {
  return tf.tidy(() => {
    const gate = matMul2d(x, k.gate); // [M, I]
    const up = matMul2d(x, k.up); // [M, I]
    const output = matMul2d(tf.mul(silu(gate), up) as tf.Tensor2D, k.down); // [M, D]
    return { gate, up, output } as unknown as tf.TensorContainer;
  }) as unknown as ExpertActivations;
}

/**
 * Backward of one expert. `xT [D, M]` is `xᵀ` (shared by all experts), `dy [M, D]` the gradient
 * of this expert's output (already scaled by its routing weight). `weightGradients` false: only
 * the input gradient (no `xᵀ·d·` / `hᵀ·dy` products; `xT` may then be null).
 */
export function expertBackward(
  xT: tf.Tensor2D | null,
  k: ExpertKernels,
  act: ExpertActivations,
  dy: tf.Tensor2D,
  weightGradients = true,
): ExpertGradients {
  return tf.tidy(() => {
    const g = act.gate;
    const sig = tf.sigmoid(g); // σ(g)  [M, I]
    const s = tf.mul(g, sig); // silu(g)  [M, I]
    const dh = matMul2dTransposeB(dy, k.down); // dy·Downᵀ  [M, D]·[D, I]
    const du = tf.mul(dh, s) as tf.Tensor2D; // [M, I]
    const siluGrad = tf.mul(sig, tf.add(1, tf.mul(g, tf.sub(1, sig)))); // σ(g)·(1 + g·(1 − σ(g)))
    const dg = tf.mul(tf.mul(dh, act.up), siluGrad) as tf.Tensor2D; // [M, I]
    const input = tf.add(matMul2dTransposeB(dg, k.gate), matMul2dTransposeB(du, k.up)) as tf.Tensor2D; // dg·Gateᵀ + du·Upᵀ  [M, D]
    if (!weightGradients) return { input } as unknown as tf.TensorContainer;
    if (!xT) throw new Error('expertBackward: xT is required for the weight gradients');
    const h = tf.mul(s, act.up) as tf.Tensor2D; // [M, I]
    const down = matMul2d(transposeLastTwo(h), dy); // [I, M]·[M, D]
    const gate = matMul2d(xT, dg); // [D, M]·[M, I]
    const up = matMul2d(xT, du); // [D, M]·[M, I]
    return { gate, up, down, input } as unknown as tf.TensorContainer;
  }) as unknown as ExpertGradients;
}

/** The routing weight of expert `e` per sample, shaped to scale `[B, N, D]`: `[B, 1, 1]`. */
export function expertWeight(weights: tf.Tensor2D, e: number): tf.Tensor3D {
  const B = weights.shape[0];
  return tf.reshape(tf.slice(weights, [0, e], [B, 1]), [B, 1, 1]);
}

/**
 * `Σ_e w[b, e] · y_e[b]` in expert order: `outputs` E × `[B·N, D]`, `weights [B, E]` → `[B, N, D]`.
 */
export function weightedSum(outputs: readonly tf.Tensor2D[], weights: tf.Tensor2D, B: number, N: number): tf.Tensor3D {
  return tf.tidy(() => {
    const D = outputs[0]!.shape[1];
    let sum: tf.Tensor | null = null;
    outputs.forEach((y, e) => {
      const term = tf.mul(expertWeight(weights, e), tf.reshape(y, [B, N, D])); // [B, N, D]
      sum = sum === null ? term : tf.add(sum, term);
    });
    return sum as unknown as tf.Tensor3D;
  });
}

/** `dy_e = dOut ⊙ w[:, e]` flattened: `dOut [B, N, D]` → `[B·N, D]`. */
export function expertOutputGradient(dOut: tf.Tensor3D, weights: tf.Tensor2D, e: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, N, D] = dOut.shape;
    return tf.reshape(tf.mul(dOut, expertWeight(weights, e)), [B * N, D]) as tf.Tensor2D;
  });
}

/** `dw[b, e] = Σ_{n,d} dOut[b, n, d] · y_e[b, n, d]`: E outputs `[B·N, D]` → `[B, E]`. */
export function routingWeightGradient(dOut: tf.Tensor3D, outputs: readonly tf.Tensor2D[]): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, N, D] = dOut.shape;
    const columns = outputs.map((y) => tf.sum(tf.mul(dOut, tf.reshape(y, [B, N, D])), [1, 2])); // E × [B]
    return tf.stack(columns, 1) as tf.Tensor2D; // [B, E]
  });
}
