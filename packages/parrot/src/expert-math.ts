/**
 * One SwiGLU expert and the routing-weighted sum, forward and backward written out explicitly.
 *
 * Shared by the main thread and the expert worker threads (`./threads`), so an expert computes
 * the same kernels in the same order wherever it runs: with the same backend the values are
 * bitwise identical.
 *
 * An expert is core's SwiGLU math (`swiGLUForward` / `swiGLUBackward`, formulas and kernel choices
 * in core's `ops/swiglu.ts`), kernels in the internal `[in, out]` layout; `xᵀ` is formed once and
 * shared by all experts' backwards.
 */
import * as tf from '@tensorflow/tfjs-core';
import { swiGLUBackward, swiGLUForward, type SwiGLUActivations, type SwiGLUGradients, type SwiGLUKernels } from '@mllm/core';

/** One expert's kernels in the internal layout (`gate`, `up` `[D, I]`, `down` `[I, D]`). */
export type ExpertKernels = SwiGLUKernels;

/** What one expert's backward needs from its forward. */
export type ExpertActivations = SwiGLUActivations;

/** Gradients of one expert's kernels (absent when not asked for) and its share of `dx`. */
export type ExpertGradients = SwiGLUGradients;

/** `x [M, D]` → the expert's activations (output `y [M, D]` included). */
export const expertForward = swiGLUForward;

/**
 * Backward of one expert. `xT [D, M]` is `xᵀ` (shared by all experts), `dy [M, D]` the gradient
 * of this expert's output (already scaled by its routing weight).
 */
export const expertBackward = swiGLUBackward;

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
