/**
 * A fused rotary kernel for the host-memory backends (cpu, wasm): `x·cos + rotateHalf(x)·sin` in one
 * JavaScript pass over the tensors' memory, and its transpose for the gradient.
 *
 * Why: unfused, applying rotary is rotateHalf (on wasm a `[N, d]·[d, d]` signed-permutation product,
 * elsewhere Split + Neg + Concat), two broadcasting Multiplies and an Add, and the gradient as many
 * again. In the Wings learners' forward+backward on wasm that was ~9 ms of ~85 (tf.profile); one pass
 * over `x` per direction costs a fraction of it. Values are those of the unfused ops to the bit: each
 * product is rounded to float32 (`Math.fround`) before the float32 sum, as tfjs' Multiply and Add do.
 *
 * Layout: `x [B, h, L, d]`, `cos`, `sin` `[B | 1, 1, L, d]` (one table per batch row or one for all,
 * shared by the heads). With `[x1, x2]` the two halves of the last axis:
 *
 *   forward     y  = [x1·c1 − x2·s1,   x2·c2 + x1·s2]
 *   transposed  dx = [dy1·c1 + dy2·s2, dy2·c2 − dy1·s1]     (the forward's adjoint in x)
 *
 * Each is the other's gradient in `x`; the gradients in `cos`/`sin` are written with tf ops and run
 * only when something asks for them (the tables usually come from positions, with no gradient path).
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostDataAccessible, registerKernelsOnce, withFloat32Output } from './host-tensor-data.js';

/** Kernel name, registered for `cpu` and `wasm`. */
export const HOST_ROTARY = 'MllmHostRotary';

interface RotaryAttrs {
  /** `false`: apply the rotation; `true`: apply its transpose (the gradient in `x`). */
  transposed: boolean;
}

/** `[x1, x2] → [−x2, x1]` on the last axis, with tf ops (the gradients' tables path). */
function rotateHalfOps(x: tf.Tensor): tf.Tensor {
  const d = x.shape[x.rank - 1]!;
  const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
  return tf.concat([tf.neg(x2), x1], -1);
}

/** Sum `t` down to `shape` (the broadcast shape of an input). */
function reduceTo(t: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, t.shape); // the axes `shape` was broadcast along
  return axes.length ? tf.reshape(tf.sum(t, axes), shape) : t;
}

/**
 * The pass itself: `out [B, h, L, d]` from `x`, `cos`, `sin` (flat arrays) for rows of `d`.
 * `cosBatch`/`sinBatch` are 1 when that table is shared by every batch row, else B.
 */
function rotate(
  out: Float32Array, x: ArrayLike<number>, cos: ArrayLike<number>, sin: ArrayLike<number>,
  [B, h, L, d]: [number, number, number, number], cosBatch: number, sinBatch: number, transposed: boolean,
): void {
  const half = d / 2;
  const f = Math.fround;
  for (let b = 0; b < B; b++) {
    const cosBase = (cosBatch === 1 ? 0 : b) * L * d;
    const sinBase = (sinBatch === 1 ? 0 : b) * L * d;
    for (let head = 0; head < h; head++) {
      for (let l = 0; l < L; l++) {
        const row = ((b * h + head) * L + l) * d;
        const c = cosBase + l * d;
        const s = sinBase + l * d;
        for (let j = 0; j < half; j++) {
          const x1 = x[row + j]!;
          const x2 = x[row + half + j]!;
          const c1 = cos[c + j]!;
          const c2 = cos[c + half + j]!;
          const s1 = sin[s + j]!;
          const s2 = sin[s + half + j]!;
          if (transposed) {
            out[row + j] = f(x1 * c1) + f(x2 * s2);
            out[row + half + j] = f(x2 * c2) - f(x1 * s1);
          } else {
            out[row + j] = f(x1 * c1) + f(-x2 * s1);
            out[row + half + j] = f(x2 * c2) + f(x1 * s2);
          }
        }
      }
    }
  }
}

function kernelFunc(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, cos, sin } = args.inputs as { x: tf.TensorInfo; cos: tf.TensorInfo; sin: tf.TensorInfo };
  const transposed = Boolean((args.attrs as unknown as RotaryAttrs | undefined)?.transposed);
  const shape = x.shape as [number, number, number, number];
  return withFloat32Output(args.backend, shape, (out, read) =>
    rotate(out, read(x), read(cos), read(sin), shape, cos.shape[0]!, sin.shape[0]!, transposed),
  );
}

const GRADIENT: tf.GradConfig = {
  kernelName: HOST_ROTARY,
  inputsToSave: ['x', 'cos', 'sin'],
  gradFunc: (dy, saved, attrs) => {
    const [x, cos, sin] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
    const transposed = Boolean((attrs as unknown as RotaryAttrs).transposed);
    const g = dy as tf.Tensor;
    return {
      x: () => runHostRotary(g, cos, sin, !transposed),
      cos: () => reduceTo(tf.mul(g, x), cos.shape),
      // forward: ∂y/∂s = rotateHalf(x); transposed: ∂(dx)/∂s gives dy ⊙ rotateHalf(g) (see the file comment).
      sin: () => reduceTo(transposed ? tf.mul(x, rotateHalfOps(g)) : tf.mul(g, rotateHalfOps(x)), sin.shape),
    };
  },
};

/** Registers the kernel for the active backend if it is cpu or wasm; returns whether it can run there. */
export function hostRotaryAvailable(): boolean {
  const name = tf.getBackend();
  if ((name !== 'cpu' && name !== 'wasm') || !hostDataAccessible(name)) return false;
  registerKernelsOnce([{ kernelName: HOST_ROTARY, backendName: name, kernelFunc: kernelFunc as unknown as tf.KernelFunc }], [GRADIENT]);
  return true;
}

/**
 * `x [B, h, L, d]`, `cos`/`sin` `[B | 1, 1, L, d]` → `x·cos + rotateHalf(x)·sin` (or its transpose);
 * float32. Call only when {@link hostRotaryAvailable} returned true and the shapes were checked.
 */
export function runHostRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, transposed = false): tf.Tensor {
  const attrs: RotaryAttrs = { transposed };
  return tf.engine().runKernel(HOST_ROTARY, { x, cos, sin } as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
