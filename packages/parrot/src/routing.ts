/**
 * Parrot's text-guided router, as small pure functions.
 *
 * For one sample with visual tokens `H [N, D]` (row 0 = projected CLS) and text embeddings
 * `X [T, D]`, the reference computes (parameter-free cross-attention, single head):
 *
 *   a = softmax_T( H[0] · Xᵀ / √D )      text attention            [T]
 *   g = a · X                             pooled text               [D]
 *   p = softmax_E( g · W_gateᵀ )          router probabilities      [E]
 *
 * Here the batch is padded: `X [B, T, D]` with `textMask [B, T]` (1 = real token). Masked positions
 * get zero attention; a sample with no real text token gets `a = 0`, hence `g = 0` and uniform
 * routing `p = 1/E` (which is also what the reference computes for an empty text: an empty softmax
 * times an empty matrix is a zero vector).
 */
import * as tf from '@tensorflow/tfjs-core';
import { maskedSoftmax } from '@mllm/core';

/**
 * Text attention of the CLS query: `softmax_T(cls · Xᵀ / √D)` with masked positions excluded.
 *
 * @param cls   `[B, D]` query (the projected CLS token of each sample; no learned projection)
 * @param text  `[B, T, D]` keys (raw token embeddings; no learned projection)
 * @param textMask `[B, T]` 1/true = real token, or null (all real)
 * @returns `[B, T]` attention weights; rows sum to 1, or are all 0 when the row is fully masked
 */
export function clsTextAttention(cls: tf.Tensor2D, text: tf.Tensor3D, textMask: tf.Tensor2D | null): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, D] = text.shape;
    if (T === 0) return tf.zeros([B, 0]) as tf.Tensor2D;
    // Elementwise product + sum instead of a [B,1,D]·[B,D,T] batched matMul with a transposed
    // operand (slow on wasm); T·D per sample is tiny either way.
    const query = tf.reshape(cls, [B, 1, D]); // [B, 1, D]
    const scores = tf.div(tf.sum(tf.mul(text, query), -1), Math.sqrt(D)); // [B, T]
    return maskedSoftmax(scores, textMask, -1) as tf.Tensor2D; // [B, T]
  });
}

/** Attention-pooled text: `g_b = Σ_t a_{b,t} · X_{b,t}`. `attention [B, T]`, `text [B, T, D]` → `[B, D]`. */
export function poolText(attention: tf.Tensor2D, text: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, D] = text.shape;
    if (T === 0) return tf.zeros([B, D]) as tf.Tensor2D;
    const weights = tf.reshape(attention, [B, T, 1]); // [B, T, 1]
    return tf.sum(tf.mul(weights, text), 1) as tf.Tensor2D; // [B, D]
  });
}

/**
 * Top-k selection mask of router probabilities: 1 where expert `i` is among the `k` largest of its
 * row (ties: lower index first), else 0. A constant for the gradient.
 *
 * Built from ranks with `step` (whose gradient is zero) instead of `tf.topk` (which has no
 * registered gradient, so it could not sit on a taped path):
 * `rank_i = #{j : p_j > p_i} + #{j < i : p_j = p_i}`, selected ⇔ `rank_i < k`.
 *
 * @param probabilities `[B, E]`
 * @returns `[B, E]` float 0/1
 */
export function topKMask(probabilities: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, E] = probabilities.shape;
    if (k >= E) return tf.ones([B, E]) as tf.Tensor2D;
    const others = tf.reshape(probabilities, [B, 1, E]); // [B, 1(i), E(j)]
    const self = tf.reshape(probabilities, [B, E, 1]); // [B, E(i), 1]
    const greater = tf.step(tf.sub(others, self)); // [B, E, E] 1 where p_j > p_i
    const less = tf.step(tf.sub(self, others)); // [B, E, E] 1 where p_j < p_i
    const ties = tf.sub(tf.sub(1, greater), less); // [B, E, E] 1 where p_j = p_i
    const earlierValues = new Float32Array(E * E);
    for (let i = 0; i < E; i++) for (let j = 0; j < i; j++) earlierValues[i * E + j] = 1;
    const earlier = tf.tensor2d(earlierValues, [E, E]); // [E(i), E(j)] 1 where j < i
    const rank = tf.sum(tf.add(greater, tf.mul(ties, earlier)), -1); // [B, E]
    return tf.step(tf.sub(k - 0.5, rank)) as tf.Tensor2D; // [B, E]
  });
}

/**
 * Sparse routing (beyond the reference): keep the top `k` router probabilities of each row and
 * renormalize them to sum to 1: `w_i = p_i·m_i / Σ_j p_j·m_j`. Gradients flow through `p`.
 *
 * @param probabilities `[B, E]`, `mask` `[B, E]` from `topKMask` → `[B, E]`
 */
export function renormalizeTopK(probabilities: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const kept = tf.mul(probabilities, mask); // [B, E]
    return tf.div(kept, tf.sum(kept, -1, true)) as tf.Tensor2D; // [B, E]
  });
}

/**
 * Switch-Transformer-style load-balancing loss (beyond the reference; Parrot trains without one):
 *
 *   L = E · Σ_i f_i · P_i,   f_i = (1/(B·k)) Σ_b m_{b,i},   P_i = (1/B) Σ_b p_{b,i}
 *
 * with `m` the top-k assignment mask (k = 1, the arg-max expert, for dense routing) and `p` the
 * (pre-top-k) router probabilities. Routing is per sample, so the "tokens" being balanced are the
 * samples (images) of the batch. `f` sums to 1 and is a constant for the gradient; a perfectly
 * uniform router gives L = 1.
 *
 * @param probabilities `[B, E]`, `assignment` `[B, E]` 0/1 with `k` ones per row → scalar
 */
export function loadBalancingLoss(probabilities: tf.Tensor2D, assignment: tf.Tensor2D, k: number): tf.Scalar {
  return tf.tidy(() => {
    const [B, E] = probabilities.shape;
    const fraction = tf.div(tf.sum(assignment, 0), B * k); // [E]
    const meanProbability = tf.mean(probabilities, 0); // [E]
    return tf.mul(tf.sum(tf.mul(fraction, meanProbability)), E) as tf.Scalar;
  });
}
