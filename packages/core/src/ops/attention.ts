/** Multi-head attention math as pure functions. Shapes: B batch, h heads, L length, d head dim. */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul, batchMatMulTransposeB } from './matmul.js';
import { maskedSoftmax } from './softmax.js';
import { isHostMemoryBackend } from '../backend/backend-names.js';
import { transposeAxes } from './transpose.js';
import { nextSeed } from '../nn/random.js';

/** `[B, L, h·d] → [B, h, L, d]`. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
  const [B, L, H] = x.shape as [number, number, number];
  if (H % heads !== 0) throw new Error(`splitHeads: width ${H} is not divisible by heads ${heads}`);
  return tf.tidy(() => transposeAxes(tf.reshape(x, [B, L, heads, H / heads]), [0, 2, 1, 3]) as tf.Tensor4D); // [B, h, L, d]
}

/** `[B, h, L, d] → [B, L, h·d]`. */
export function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [B, h, L, d] = x.shape as [number, number, number, number];
  return tf.tidy(() => tf.reshape(transposeAxes(x, [0, 2, 1, 3]), [B, L, h * d]) as tf.Tensor3D); // [B, L, h·d]
}

export interface AttentionResult {
  /** `[B, h, Lq, d]` */
  output: tf.Tensor4D;
  /** `[B, h, Lq, Lk]` softmax probabilities (masked positions exactly 0). */
  probs: tf.Tensor4D;
}

/** Options of `scaledDotProductAttention` beyond the mask. */
export interface AttentionOptions {
  /** Score scale (default `1/√d`). */
  scale?: number;
  /**
   * An additive float mask broadcastable to `[B, h, Lq, Lk]`, added to the scaled scores before the
   * softmax (the reference's `attention_mask`: 0 = attend, a large negative = masked). Combines with
   * the boolean `mask`.
   */
  additiveMask?: tf.Tensor | null;
  /**
   * What a query row whose keys are all masked by `mask` becomes: `'zero'` (default: probabilities
   * and output exactly 0) or `'uniform'` (the reference's additive dtype-min mask: softmax of a
   * constant row, i.e. the mean over all keys of `uniformValues`).
   */
  fullyMaskedRows?: 'zero' | 'uniform';
  /**
   * `[B, h, Lk, dv]`: the values averaged into fully masked rows under `'uniform'` (default `v`), e.g.
   * the raw values when `v` had padding keys zeroed. Only those rows read it.
   */
  uniformValues?: tf.Tensor | null;
  /** Inverted dropout on the probabilities (only the product with `v`; `probs` are returned before it). */
  dropoutRate?: number;
  /** Whether dropout is active (default false). Seeded from the global stream (`nextSeed`). */
  training?: boolean;
}

/**
 * `softmax(q·kᵀ·scale + additive, masked) · v`.
 * q `[B, h, Lq, d]`, k/v `[B, h, Lk, d]`, mask broadcastable to `[B, h, Lq, Lk]` (nonzero = attend),
 * scale defaults to `1/√d` (a number as 5th argument is the scale, as before `options`). Products run
 * as grouped plain matMuls (`q·kᵀ` by `batchMatMulTransposeB`, no transpose materialised). The one
 * attention kernel sequence of @mllm: core's `Attention`, Wings' LoRRA and the Q-Former call it.
 */
export function scaledDotProductAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask?: tf.Tensor | null,
  options: number | AttentionOptions = {},
): AttentionResult {
  const opts: AttentionOptions = typeof options === 'number' ? { scale: options } : options;
  const [B, h, Lq, d] = q.shape as [number, number, number, number];
  const Lk = k.shape[2] as number;
  if (q.rank !== 4) throw new Error(`attention: q must be [B, h, Lq, d], got [${q.shape}]`);
  if (k.rank !== 4 || k.shape[0] !== B || k.shape[1] !== h || k.shape[3] !== d) {
    throw new Error(`attention: k must be [${B}, ${h}, Lk, ${d}], got [${k.shape}]`);
  }
  if (v.rank !== 4 || v.shape[0] !== B || v.shape[1] !== h || v.shape[2] !== Lk) {
    throw new Error(`attention: v must be [${B}, ${h}, ${Lk}, dv], got [${v.shape}]`);
  }
  const fullyMaskedRows = opts.fullyMaskedRows ?? 'zero';
  if (fullyMaskedRows !== 'zero' && fullyMaskedRows !== 'uniform') {
    throw new Error(`attention: fullyMaskedRows must be 'zero' or 'uniform', got ${String(fullyMaskedRows)}`);
  }
  const dropoutRate = opts.dropoutRate ?? 0;
  if (!(dropoutRate >= 0 && dropoutRate < 1)) throw new Error(`attention: dropoutRate must be in [0, 1), got ${dropoutRate}`);
  return tf.tidy(() => {
    const dv = v.shape[3] as number;
    const q3 = tf.reshape(q, [B * h, Lq, d]) as tf.Tensor3D; // [B·h, Lq, d]
    const k3 = tf.reshape(k, [B * h, Lk, d]) as tf.Tensor3D; // [B·h, Lk, d]
    const scores = tf.mul(batchMatMulTransposeB(q3, k3), opts.scale ?? 1 / Math.sqrt(d)); // [B·h, Lq, Lk]
    let scores4: tf.Tensor = tf.reshape(scores, [B, h, Lq, Lk]);
    if (opts.additiveMask) scores4 = tf.add(scores4, opts.additiveMask); // [B, h, Lq, Lk]
    // Softmax in float32 (all of tfjs' float math is float32); fully masked rows exactly 0.
    const probs = maskedSoftmax(scores4, mask ?? null) as tf.Tensor4D; // [B, h, Lq, Lk]
    const kept = opts.training && dropoutRate > 0 ? tf.dropout(probs, dropoutRate, undefined, nextSeed()) : probs;
    const v3 = tf.reshape(v, [B * h, Lk, dv]) as tf.Tensor3D;
    let output = tf.reshape(batchMatMul(tf.reshape(kept, [B * h, Lq, Lk]) as tf.Tensor3D, v3), [B, h, Lq, dv]); // [B, h, Lq, dv]
    if (mask && fullyMaskedRows === 'uniform') {
      // The reference's additive dtype-min mask turns a fully masked row into softmax(const) = 1/Lk
      // over every key: the mean of `uniformValues`, selected into those rows only, so a NaN there
      // reaches no other row.
      const mean = tf.mean(opts.uniformValues ?? v, 2, true); // [B, h, 1, dv]
      const maskShape = [...new Array<number>(4 - mask.rank).fill(1), ...mask.shape];
      const anyKey = tf.any(tf.cast(tf.reshape(mask, maskShape), 'bool'), -1, true); // [·, ·, Lq|1, 1]
      output = tf.where(tf.broadcastTo(anyKey, [B, h, Lq, dv]), output, tf.broadcastTo(mean, [B, h, Lq, dv]));
    }
    return { output: output as tf.Tensor4D, probs };
  });
}

/** Causal mask `[1, 1, L, L]` (query i sees keys j ≤ i), bool. */
export function causalMask(length: number): tf.Tensor4D {
  return tf.tidy(() => {
    const i = tf.expandDims(tf.range(0, length, 1, 'int32'), 1); // [L, 1]
    const j = tf.expandDims(tf.range(0, length, 1, 'int32'), 0); // [1, L]
    return tf.reshape(tf.greaterEqual(i, j), [1, 1, length, length]) as tf.Tensor4D;
  });
}

/**
 * Causal-by-position mask `[B, 1, Lq, Lk]` (bool): key visible iff keyPosition ≤ queryPosition.
 * On cpu/wasm (cheap synchronous reads) it is filled in JavaScript: tfjs-wasm's broadcasting compare
 * kernel took ~5 ms for `[1, 256] × [256, 1]`; elsewhere one broadcast `lessEqual`.
 */
export function positionCausalMask(queryPositions: tf.Tensor2D, keyPositions: tf.Tensor2D): tf.Tensor4D {
  const [Bq, Lq] = queryPositions.shape;
  const [Bk, Lk] = keyPositions.shape;
  if (Bq !== Bk && Bq !== 1 && Bk !== 1) {
    throw new Error(`positionCausalMask: queryPositions [${queryPositions.shape}] and keyPositions [${keyPositions.shape}] must have equal (or broadcastable 1) batch`);
  }
  const B = Math.max(Bq, Bk);
  if (isHostMemoryBackend()) {
    const queries = queryPositions.dataSync(); // [B·Lq]
    const keys = keyPositions.dataSync(); // [B·Lk]
    const mask = new Uint8Array(B * Lq * Lk); // [B, 1, Lq, Lk]
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < Lq; i++) {
        const q = queries[(Bq === 1 ? 0 : b) * Lq + i]!;
        const row = (b * Lq + i) * Lk;
        const keyRow = (Bk === 1 ? 0 : b) * Lk;
        for (let j = 0; j < Lk; j++) mask[row + j] = keys[keyRow + j]! <= q ? 1 : 0;
      }
    }
    return tf.tensor4d(mask, [B, 1, Lq, Lk], 'bool');
  }
  return tf.tidy(() => {
    const qp = tf.expandDims(tf.expandDims(queryPositions, 2), 1); // [B, 1, Lq, 1]
    const kp = tf.expandDims(tf.expandDims(keyPositions, 1), 1); // [B, 1, 1, Lk]
    return tf.lessEqual(kp, qp) as tf.Tensor4D;
  });
}

/** Padding mask `[B, Lk]` (1 = real) → `[B, 1, 1, Lk]` bool. */
export function keyPaddingMask(keyMask: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => tf.reshape(tf.notEqual(keyMask, 0), [keyMask.shape[0], 1, 1, keyMask.shape[1]]) as tf.Tensor4D);
}
