/**
 * Next-token log-likelihood over supervised labels (HF causal-LM convention: labels are aligned
 * with the inputs and shifted here):
 *
 *   logp[b, t] = log_softmax(logits[b, t])[labels[b, t+1]]      for labels[b, t+1] ≠ IGNORE, else 0
 *   loss = −Σ logp / #supervised                                 (mean cross-entropy)
 */
import * as tf from '@tensorflow/tfjs-core';
import { IGNORE_INDEX } from '../tokenizer/byte-tokenizer.js';
import { gatherRows } from '@mllm/core';

/** `logits [B, L, V]`, `labels [B·L]` (row-major, IGNORE = −100) → `[B, L−1]` target log-probs (0 where ignored). */
export function shiftedTokenLogProbs(logits: tf.Tensor3D, labels: Int32Array): tf.Tensor2D {
  const [B, L, V] = logits.shape;
  if (labels.length !== B * L) throw new Error(`shiftedTokenLogProbs: labels must have B·L = ${B * L} entries, got ${labels.length}`);
  return tf.tidy(() => {
    if (L < 2) return tf.zeros([B, Math.max(L - 1, 0)]) as tf.Tensor2D;
    const index = new Int32Array(B * (L - 1));
    const keep = new Float32Array(B * (L - 1));
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < L - 1; t++) {
        const target = labels[b * L + t + 1];
        const row = b * (L - 1) + t;
        if (target === IGNORE_INDEX) continue;
        if (!Number.isInteger(target) || target < 0 || target >= V) {
          throw new Error(`loss: labels[${b}][${t + 1}] must be in [0, ${V}) or ${IGNORE_INDEX}, got ${target}`);
        }
        index[row] = row * V + target;
        keep[row] = 1;
      }
    }
    const shifted = tf.slice(logits, [0, 0, 0], [B, L - 1, V]); // [B, L−1, V]
    const logProbs = tf.logSoftmax(tf.reshape(shifted, [B * (L - 1), V])); // [B·(L−1), V]
    const picked = tf.reshape(gatherRows(tf.reshape(logProbs, [-1, 1]) as tf.Tensor2D, index), [-1]); // [B·(L−1)]
    return tf.reshape(tf.mul(picked, tf.tensor1d(keep)), [B, L - 1]) as tf.Tensor2D; // [B, L−1]
  });
}

/** Number of supervised next-token targets in `labels [B·L]` (positions 1..L−1 of each row). */
export function countSupervised(labels: Int32Array, B: number, L: number): number {
  let n = 0;
  for (let b = 0; b < B; b++) for (let t = 1; t < L; t++) if (labels[b * L + t] !== IGNORE_INDEX) n++;
  return n;
}

/** Mean next-token cross-entropy (scalar). Zero (still connected to `logits`) when nothing is supervised. */
export function shiftedCrossEntropy(logits: tf.Tensor3D, labels: Int32Array): tf.Scalar {
  const [B, L] = logits.shape;
  const count = countSupervised(labels, B, L);
  return tf.tidy(() => {
    if (count === 0) return tf.mul(tf.sum(logits), 0) as tf.Scalar;
    return tf.div(tf.neg(tf.sum(shiftedTokenLogProbs(logits, labels))), count) as tf.Scalar;
  });
}
