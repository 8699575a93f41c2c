/**
 * Rotary position embedding, rotate-half convention (HF LLaMA/Qwen2):
 * `invFreq_i = θ^(−2i/d)`, `angle = pos·invFreq`, `emb = [angle, angle]`,
 * `x' = x·cos(emb) + rotateHalf(x)·sin(emb)`, `rotateHalf([x1, x2]) = [−x2, x1]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { matMul2d } from './matmul.js';
import { isHostMemoryBackend } from '../backend/backend-names.js';
import { hostRotaryAvailable, runHostRotary } from '../kernels/rotary-kernel.js';

/** `positions [B, L]` (real sequence positions) → `{ cos, sin }` each `[B, 1, L, headDim]`. */
export function rotaryCosSin(positions: tf.Tensor2D, headDim: number, theta: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  if (headDim % 2 !== 0) throw new Error(`rotaryCosSin: headDim must be even, got ${headDim}`);
  return rotaryCosSinFromInvFreq(positions, rotaryInvFreq(headDim, theta));
}

/** `invFreq_i = θ^(−2i/d)`, `i < d/2`, rounded to float32 (as HF's `inv_freq` buffer). */
export function rotaryInvFreq(headDim: number, theta: number): Float32Array {
  const invFreq = new Float32Array(headDim / 2);
  for (let i = 0; i < invFreq.length; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  return invFreq;
}

/**
 * Rotary tables from given frequencies (scaled variants: llama3, dynamic NTK):
 * `angle = fround(fround(pos / positionDivisor)·invFreq)` (float32 as HF; the divisor is linear
 * `rope_scaling`'s factor, HF divides the float32 positions), `emb = [angle, angle]`.
 * `positions [B, L]` → `{ cos, sin }` each `[B, 1, L, 2·invFreq.length]`.
 */
export function rotaryCosSinFromInvFreq(
  positions: tf.Tensor2D,
  invFreq: Float32Array,
  positionDivisor = 1,
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  if (positions.rank !== 2) throw new Error(`rotaryCosSin: positions must be [B, L], got [${positions.shape}]`);
  if (isHostMemoryBackend()) return rotaryTablesOnHost(positions, invFreq, positionDivisor);
  return tf.tidy(() => {
    let pos = tf.cast(positions, 'float32');
    if (positionDivisor !== 1) pos = tf.div(pos, positionDivisor);
    const angles = tf.mul(tf.expandDims(pos, -1), tf.tensor1d(invFreq)); // [B, L, d/2]
    const emb = tf.concat([angles, angles], -1); // [B, L, d]
    const emb4 = tf.expandDims(emb, 1) as tf.Tensor4D; // [B, 1, L, d]
    const { sin, cos } = accurateSinCos(emb4);
    return { cos: cos as tf.Tensor4D, sin: sin as tf.Tensor4D };
  });
}

/**
 * Host-memory backends (cpu, wasm): the tables filled in JavaScript, two kernels instead of ~40.
 * Same float32 angle `fround(pos·invFreq)` as the tensor path and PyTorch, then `Math.cos`/`Math.sin`
 * in float64 rounded to float32 (what PyTorch's float32 cos/sin give, to the last bit or one ulp).
 */
function rotaryTablesOnHost(positions: tf.Tensor2D, invFreq: Float32Array, positionDivisor: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const [B, L] = positions.shape;
  const half = invFreq.length;
  const d = 2 * half;
  const pos = positions.dataSync();
  const cos = new Float32Array(B * L * d); // [B, 1, L, d]
  const sin = new Float32Array(B * L * d);
  for (let t = 0; t < B * L; t++) {
    const p = positionDivisor === 1 ? Math.fround(Number(pos[t])) : Math.fround(Math.fround(Number(pos[t])) / positionDivisor);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * d + i] = c;
      cos[t * d + half + i] = c;
      sin[t * d + i] = s;
      sin[t * d + half + i] = s;
    }
  }
  return { cos: tf.tensor4d(cos, [B, 1, L, d]), sin: tf.tensor4d(sin, [B, 1, L, d]) };
}

/**
 * `[..., d] → [..., d]`: `[x1, x2] → [−x2, x1]`.
 *
 * On wasm as one product with the signed permutation `P [d, d]` (`x·P`; exact: one ±1 per column),
 * whose gradient is one more product: tfjs-wasm's Split/Concat/Neg and their gradients cost several
 * times that (they copy whole tensors through the heap). Elsewhere split, negate and concat.
 */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1];
    if (tf.getBackend() === 'wasm' && x.dtype === 'float32' && d % 2 === 0) {
      const half = d / 2;
      const permutation = new Float32Array(d * d); // P[k, j]: output j takes input k
      for (let j = 0; j < half; j++) permutation[(j + half) * d + j] = -1; // out[j] = −x2[j]
      for (let j = 0; j < half; j++) permutation[j * d + half + j] = 1; // out[half + j] = x1[j]
      const rows = tf.reshape(x, [-1, d]) as tf.Tensor2D; // [N, d]
      return tf.reshape(matMul2d(rows, tf.tensor2d(permutation, [d, d])), x.shape);
    }
    const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
    return tf.concat([tf.neg(x2), x1], -1);
  });
}

/** Whether `x [B, h, L, d]` and the tables `[B | 1, 1, L, d]` fit the fused host kernel. */
function fusedRotaryFits(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): boolean {
  if (x.rank !== 4 || x.dtype !== 'float32' || x.shape[3]! % 2 !== 0) return false;
  const [B, , L, d] = x.shape as [number, number, number, number];
  const fits = (t: tf.Tensor) =>
    t.rank === 4 && t.dtype === 'float32' && (t.shape[0] === B || t.shape[0] === 1) && t.shape[1] === 1 && t.shape[2] === L && t.shape[3] === d;
  return fits(cos) && fits(sin);
}

/**
 * `x [B, h, L, d]` rotated by `cos`, `sin` `[B, 1, L, d]` (or `[1, 1, L, d]`): `x·cos + rotateHalf(x)·sin`.
 * On cpu/wasm one fused kernel (`rotary-kernel.ts`, same values to the bit); elsewhere the ops.
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  if (fusedRotaryFits(x, cos, sin) && hostRotaryAvailable()) return runHostRotary(x, cos, sin);
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}

// Cody–Waite split of π/2 (HI has few significant bits, so k·HI is exact in float32).
const PIO2_HI = 1.5703125;
const PIO2_MID = 4.837512969970703125e-4;
const PIO2_LO = 7.549789948768648e-8;

/**
 * sin and cos to float32 accuracy on every backend. GPU `sin`/`cos` are allowed an absolute
 * error of 2⁻¹¹ by the Vulkan/WGSL spec (SwiftShader's reach ~2e-4 at rotary angles), far from
 * PyTorch's. So: reduce `a = k·π/2 + r` with |r| ≤ π/4, evaluate Taylor polynomials (error < 2e-9),
 * and pick the quadrant. Elementwise, no gradient needed (used on position tables).
 */
export function accurateSinCos(angle: tf.Tensor): { sin: tf.Tensor; cos: tf.Tensor } {
  return tf.tidy(() => {
    const k = tf.round(tf.mul(angle, 2 / Math.PI));
    const r = tf.sub(tf.sub(tf.sub(angle, tf.mul(k, PIO2_HI)), tf.mul(k, PIO2_MID)), tf.mul(k, PIO2_LO));
    const r2 = tf.mul(r, r);
    // sin r = r(1 − r²/6(1 − r²/20(1 − r²/42(1 − r²/72))))
    let s = tf.sub(1, tf.div(r2, 72));
    s = tf.sub(1, tf.mul(tf.div(r2, 42), s));
    s = tf.sub(1, tf.mul(tf.div(r2, 20), s));
    s = tf.mul(r, tf.sub(1, tf.mul(tf.div(r2, 6), s)));
    // cos r = 1 − r²/2(1 − r²/12(1 − r²/30(1 − r²/56(1 − r²/90))))
    let c = tf.sub(1, tf.div(r2, 90));
    c = tf.sub(1, tf.mul(tf.div(r2, 56), c));
    c = tf.sub(1, tf.mul(tf.div(r2, 30), c));
    c = tf.sub(1, tf.mul(tf.div(r2, 12), c));
    c = tf.sub(1, tf.mul(tf.div(r2, 2), c));
    const quadrant = tf.mod(k, 4); // floor-mod: 0..3
    const odd = tf.equal(tf.mod(quadrant, 2), 1);
    const sinBase = tf.where(odd, c, s);
    const cosBase = tf.where(odd, s, c);
    const sinSign = tf.where(tf.greaterEqual(quadrant, 2), tf.neg(tf.onesLike(k)), tf.onesLike(k));
    const cosNegative = tf.logicalOr(tf.equal(quadrant, 1), tf.equal(quadrant, 2));
    const cosSign = tf.where(cosNegative, tf.neg(tf.onesLike(k)), tf.onesLike(k));
    return { sin: tf.mul(sinBase, sinSign), cos: tf.mul(cosBase, cosSign) };
  });
}
