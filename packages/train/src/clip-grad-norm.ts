/**
 * Gradient clipping by global L2 norm with PyTorch `torch.nn.utils.clip_grad_norm_` semantics:
 *
 *     total = ‖(‖g₁‖₂, …, ‖gₙ‖₂)‖₂                 (the norm of the per-tensor norms)
 *     coef  = min(1, maxNorm / (total + 1e-6))
 *     gᵢ   ← gᵢ · coef                              (always multiplied, as PyTorch does)
 *
 * and returns the pre-clip `total`. A non-finite total propagates (NaN/Inf gradients), as with
 * PyTorch's default `error_if_nonfinite=False`; the Trainer checks it before updating.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `sqrt(Σᵢ ‖gᵢ‖₂²)` as the norm of per-tensor norms, a float32 scalar (0 for no tensors). */
export function globalGradNorm(grads: Iterable<tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    const norms = [...grads].map((g) => tf.norm(g.dtype === 'float32' ? g : tf.cast(g, 'float32')));
    if (norms.length === 0) return tf.scalar(0);
    return tf.norm(tf.stack(norms)) as tf.Scalar; // [n] → []
  });
}

export interface ClipGradNormResult<G> {
  /** The clipped gradients (new tensors, same keys/order). */
  grads: G;
  /** The global norm before clipping. */
  totalNorm: tf.Scalar;
}

/**
 * Clip `grads` (a name → gradient map or an array) to global norm `maxNorm`. Returns new tensors;
 * the input gradients are not modified or disposed.
 */
export function clipGradNorm<G extends Map<string, tf.Tensor> | tf.Tensor[]>(
  grads: G,
  maxNorm: number,
): ClipGradNormResult<G> {
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || maxNorm <= 0) {
    throw new Error(`clipGradNorm: maxNorm must be a number > 0 (Infinity allowed), got ${String(maxNorm)}`);
  }
  const values: tf.Tensor[] = grads instanceof Map ? [...(grads as Map<string, tf.Tensor>).values()] : (grads as tf.Tensor[]);
  // tidy only keeps tensors found in arrays/plain objects (not in Maps): return an array.
  const [totalNorm, ...clipped] = tf.tidy(() => {
    const total = globalGradNorm(values);
    // min(1, maxNorm / (total + 1e-6)); a NaN total stays NaN like torch.clamp.
    const coefficient = tf.minimum(tf.div(tf.scalar(maxNorm), tf.add(total, 1e-6)), 1);
    return [total, ...values.map((g) => tf.mul(g, coefficient))];
  });
  const out = (grads instanceof Map ? new Map([...(grads as Map<string, tf.Tensor>).keys()].map((k, i) => [k, clipped[i]])) : clipped) as G;
  return { grads: out, totalNorm: totalNorm as tf.Scalar };
}
