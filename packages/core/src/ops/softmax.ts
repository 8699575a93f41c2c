import * as tf from '@tensorflow/tfjs-core';
import { hostSoftmaxAvailable, runHostSoftmax } from '../kernels/cpu/host-softmax.js';

/** Large negative logit used for masked positions (finite, so no `inf - inf = NaN`). */
export const MASKED_LOGIT = -1e9;

/**
 * Softmax over `axis` with positions where `mask` is false/0 excluded.
 *
 * `mask` broadcasts against `logits` (bool or numeric, nonzero = keep; NaN = drop on every backend).
 * A row whose positions are all masked returns all zeros (never NaN, never a uniform distribution over
 * padding). Without a mask it is plain softmax. On cpu, over the last axis, one fused JavaScript
 * kernel (`host-softmax.ts`). Logits at dropped positions must be finite: the cpu kernel skips them,
 * the other backends add a large negative bias (NaN + bias = NaN), so select the inputs there to 0
 * first (`zeroMasked`), as the modules do.
 */
export function maskedSoftmax(logits: tf.Tensor, mask?: tf.Tensor | null, axis = -1): tf.Tensor {
  const lastAxis = axis === -1 || axis === logits.rank - 1;
  if (lastAxis && logits.dtype === 'float32' && logits.rank >= 1 && (!mask || broadcastsOver(mask, logits)) && hostSoftmaxAvailable()) {
    return runHostSoftmax(logits, mask ?? null); // cpu: one JavaScript pass (host-softmax.ts); same semantics
  }
  if (!mask) return axis === -1 || axis === logits.rank - 1 ? tf.softmax(logits) : softmaxAlong(logits, axis);
  return tf.tidy(() => {
    // |mask| > 0 is JavaScript truthiness, as the cpu kernel tests it: NaN drops the position on
    // every backend (`mask ≠ 0` would keep it here and drop it on cpu).
    const keep = tf.cast(mask.dtype === 'bool' ? mask : tf.greater(tf.abs(mask), 0), 'float32'); // broadcastable, 1 = keep
    // Additive bias instead of `where`: `where` tiles a broadcast mask to the full logits shape
    // (≈12× slower on wasm for [B, 1, L, L] against [B, h, L, L]); `add` broadcasts natively.
    const bias = tf.mul(tf.sub(1, keep), MASKED_LOGIT); // 0 where kept, MASKED_LOGIT elsewhere
    const filled = tf.add(logits, bias);
    const probs = axis === -1 || axis === logits.rank - 1 ? tf.softmax(filled) : softmaxAlong(filled, axis);
    return tf.mul(probs, keep); // all-masked rows → exactly 0
  });
}

/** Whether `mask` broadcasts against `x` (rank ≤ x's; each aligned axis 1 or equal). */
function broadcastsOver(mask: tf.Tensor, x: tf.Tensor): boolean {
  if (mask.rank > x.rank) return false;
  const offset = x.rank - mask.rank;
  return mask.shape.every((size, axis) => size === 1 || size === x.shape[axis + offset]);
}

function softmaxAlong(x: tf.Tensor, axis: number): tf.Tensor {
  return tf.tidy(() => {
    const shifted = tf.sub(x, tf.max(x, axis, true));
    const e = tf.exp(shifted);
    return tf.div(e, tf.sum(e, axis, true));
  });
}
