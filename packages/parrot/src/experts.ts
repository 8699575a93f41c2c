/**
 * The weighted mixture of E SwiGLU experts over all visual tokens:
 *
 *   M_b = Σ_i w_{b,i} · down_i( silu(H_b·Gate_i) ⊙ (H_b·Up_i) )        [N, D] per sample b
 *
 * Kernels are in the internal `[in, out]` layout: `Gate_i`, `Up_i` `[D, I]`, `Down_i` `[I, D]`.
 * Three equivalent ways to evaluate it (all experts always run: routing is per sample, so every
 * expert is needed by some sample in general, and Parrot's routing is dense):
 *
 * - `separate`: per expert, three 2-D matMuls on the flattened tokens `[B·N, D]`, then a weighted sum.
 * - `stacked`:  kernels stacked to `[E, D, I]`, one batched (3-D) matMul per projection.
 * - `wide`:     gate/up kernels concatenated to `[D, E·I]`, down kernels to `[E·I, D]`; the routing
 *   weights scale the activations `[B·N, E, I]` so the sum over experts is folded into one 2-D
 *   matMul: `M = (A ⊙ w) · [Down_1; …; Down_E]`. Three large plain 2-D matMuls in total.
 *
 * All three use core's explicit-transpose `matMul2d`/`batchMatMul` so their gradients stay fast on wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul, matMul2d, silu } from '@mllm/core';

/** How the expert mixture is evaluated (same math, different kernels). */
export type ExpertStrategy = 'separate' | 'stacked' | 'wide';

/** One expert's kernels in the internal layout. */
export interface ExpertKernels {
  gate: tf.Tensor2D; // [D, I]
  up: tf.Tensor2D; // [D, I]
  down: tf.Tensor2D; // [I, D]
}

/**
 * `visual [B, N, D]`, `weights [B, E]`, E expert kernel sets → `[B, N, D]`.
 */
export function mixExperts(
  visual: tf.Tensor3D,
  weights: tf.Tensor2D,
  experts: readonly ExpertKernels[],
  strategy: ExpertStrategy,
): tf.Tensor3D {
  switch (strategy) {
    case 'separate':
      return mixSeparate(visual, weights, experts);
    case 'stacked':
      return mixStacked(visual, weights, experts);
    case 'wide':
      return mixWide(visual, weights, experts);
    default:
      throw new Error(`mixExperts: strategy must be 'separate', 'stacked' or 'wide', got '${String(strategy)}'`);
  }
}

function swiglu2d(x: tf.Tensor2D, k: ExpertKernels): tf.Tensor2D {
  return matMul2d(tf.mul(silu(matMul2d(x, k.gate)), matMul2d(x, k.up)) as tf.Tensor2D, k.down); // [M, D]
}

function mixSeparate(visual: tf.Tensor3D, weights: tf.Tensor2D, experts: readonly ExpertKernels[]): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, N, D] = visual.shape;
    const tokens = tf.reshape(visual, [B * N, D]) as tf.Tensor2D; // [B·N, D]
    let sum: tf.Tensor | null = null;
    experts.forEach((kernels, i) => {
      const y = tf.reshape(swiglu2d(tokens, kernels), [B, N, D]); // [B, N, D]
      const w = tf.reshape(tf.slice(weights, [0, i], [B, 1]), [B, 1, 1]); // [B, 1, 1]
      const term = tf.mul(w, y);
      sum = sum === null ? term : tf.add(sum, term);
    });
    return sum as unknown as tf.Tensor3D;
  });
}

function mixStacked(visual: tf.Tensor3D, weights: tf.Tensor2D, experts: readonly ExpertKernels[]): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, N, D] = visual.shape;
    const E = experts.length;
    const gate = tf.stack(experts.map((k) => k.gate)) as tf.Tensor3D; // [E, D, I]
    const up = tf.stack(experts.map((k) => k.up)) as tf.Tensor3D; // [E, D, I]
    const down = tf.stack(experts.map((k) => k.down)) as tf.Tensor3D; // [E, I, D]
    const tokens = tf.broadcastTo(tf.reshape(visual, [1, B * N, D]), [E, B * N, D]) as tf.Tensor3D; // [E, B·N, D]
    const hidden = tf.mul(silu(batchMatMul(tokens, gate)), batchMatMul(tokens, up)) as tf.Tensor3D; // [E, B·N, I]
    const y = tf.reshape(batchMatMul(hidden, down), [E, B, N, D]); // [E, B, N, D]
    const w = tf.reshape(tf.transpose(weights), [E, B, 1, 1]); // [E, B, 1, 1]
    return tf.sum(tf.mul(w, y), 0) as tf.Tensor3D; // [B, N, D]
  });
}

function mixWide(visual: tf.Tensor3D, weights: tf.Tensor2D, experts: readonly ExpertKernels[]): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, N, D] = visual.shape;
    const E = experts.length;
    const I = experts[0].gate.shape[1];
    const gate = tf.concat(experts.map((k) => k.gate), 1) as tf.Tensor2D; // [D, E·I]
    const up = tf.concat(experts.map((k) => k.up), 1) as tf.Tensor2D; // [D, E·I]
    const down = tf.concat(experts.map((k) => k.down), 0) as tf.Tensor2D; // [E·I, D]
    const tokens = tf.reshape(visual, [B * N, D]) as tf.Tensor2D; // [B·N, D]
    const hidden = tf.mul(silu(matMul2d(tokens, gate)), matMul2d(tokens, up)); // [B·N, E·I]
    const scaled = tf.mul(tf.reshape(hidden, [B, N, E, I]), tf.reshape(weights, [B, 1, E, 1])); // [B, N, E, I]
    const flat = tf.reshape(scaled, [B * N, E * I]) as tf.Tensor2D; // [B·N, E·I]
    return tf.reshape(matMul2d(flat, down), [B, N, D]) as tf.Tensor3D; // [B, N, D]
  });
}
