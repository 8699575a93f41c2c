/**
 * Matrix products with gradients that use only plain (non-transposed) matMuls.
 *
 * Why: on the wasm backend only 2-D matMuls without transposed operands reach XNNPACK
 * (~25 GFLOP/s here); tfjs' own MatMul gradient uses transposed operands (~2 GFLOP/s).
 * Transposing explicitly, then multiplying plainly, made a 577×1024×1024 backward 23× faster.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `[M, K] · [K, N] → [M, N]` with an explicit-transpose gradient. */
export const matMul2d: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = tf.customGrad(
  ((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([a, b]);
    return {
      value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
        // dA = dY · Bᵀ   [M, N]·[N, K] ; dB = Aᵀ · dY   [K, M]·[M, N]
        return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** `[B, M, K] · [B, K, N] → [B, M, N]` with an explicit-transpose gradient. */
export const batchMatMul: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D = tf.customGrad(
  ((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([a, b]);
    return {
      value: tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dy3 = dy as tf.Tensor3D;
        return [
          tf.matMul(dy3, tf.transpose(sb, [0, 2, 1])), // [B, M, N]·[B, N, K]
          tf.matMul(tf.transpose(sa, [0, 2, 1]), dy3), // [B, K, M]·[B, M, N]
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/**
 * `x [..., K] · W [K, N] (+ b [N]) → [..., N]`: leading dims flattened so the product is 2-D.
 */
export function linearForward(x: tf.Tensor, kernel: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor {
  const inFeatures = kernel.shape[0];
  const outFeatures = kernel.shape[1];
  const lastDim = x.shape[x.shape.length - 1];
  if (lastDim !== inFeatures) {
    throw new Error(`linear: input last dimension must be ${inFeatures}, got shape [${x.shape}]`);
  }
  const leading = x.shape.slice(0, -1);
  const x2 = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, inFeatures]) as tf.Tensor2D; // [M, K]
  let y: tf.Tensor = matMul2d(x2, kernel); // [M, N]
  if (bias) y = tf.add(y, bias);
  return x.rank === 2 ? y : tf.reshape(y, [...leading, outFeatures]); // [..., N]
}
