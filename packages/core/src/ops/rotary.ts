/**
 * Rotary position embedding, rotate-half convention (HF LLaMA/Qwen2):
 * `invFreq_i = θ^(−2i/d)`, `angle = pos·invFreq`, `emb = [angle, angle]`,
 * `x' = x·cos(emb) + rotateHalf(x)·sin(emb)`, `rotateHalf([x1, x2]) = [−x2, x1]`.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `positions [B, L]` (real sequence positions) → `{ cos, sin }` each `[B, 1, L, headDim]`. */
export function rotaryCosSin(positions: tf.Tensor2D, headDim: number, theta: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  if (headDim % 2 !== 0) throw new Error(`rotaryCosSin: headDim must be even, got ${headDim}`);
  if (positions.rank !== 2) throw new Error(`rotaryCosSin: positions must be [B, L], got [${positions.shape}]`);
  return tf.tidy(() => {
    const half = headDim / 2;
    const invFreq = new Float32Array(half);
    for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / headDim);
    const angles = tf.mul(tf.expandDims(tf.cast(positions, 'float32'), -1), tf.tensor1d(invFreq)); // [B, L, d/2]
    const emb = tf.concat([angles, angles], -1); // [B, L, d]
    const emb4 = tf.expandDims(emb, 1) as tf.Tensor4D; // [B, 1, L, d]
    return { cos: tf.cos(emb4), sin: tf.sin(emb4) };
  });
}

/** `[..., d] → [..., d]`: `[x1, x2] → [−x2, x1]`. */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1];
    const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
    return tf.concat([tf.neg(x2), x1], -1);
  });
}

/** `x [B, h, L, d]` rotated by `cos`, `sin` `[B, 1, L, d]`. */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}
