/**
 * Matrix products with gradients that use only plain (non-transposed) matMuls.
 *
 * Why: on the wasm backend only 2-D matMuls without transposed operands reach XNNPACK
 * (~25 GFLOP/s here); tfjs' own MatMul gradient uses transposed operands (~2 GFLOP/s).
 * Transposing explicitly, then multiplying plainly, made a 577×1024×1024 backward 23× faster.
 */
import * as tf from '@tensorflow/tfjs-core';
import { transposeLastTwo } from './transpose.js';
import { runWasmGroupedMatMul, wasmGroupedMatMulAvailable } from './wasm-grouped-matmul.js';

/**
 * On wasm, a 2-D product whose right operand has at least this many elements runs through the
 * grouped kernel with G = 1 (a temporary view of the operand), so XNNPACK's operator — which holds a
 * packed copy of that operand — is released right after the call instead of being cached for the
 * operand's lifetime. Repacking costs ~1–2 % of such a product; the cache would double the memory of
 * large weights (a 4096-wide ParrotMoE: 1.15 GB of packed copies next to 1.15 GB of weights).
 */
export const UNCACHED_PACKING_MIN_ELEMENTS = 8 * 1024 * 1024;

/** `[M, K] · [K, N]` through `tf.matMul`, or for large right operands on wasm without a cached packed copy. */
function plainMatMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (b.size >= UNCACHED_PACKING_MIN_ELEMENTS && a.dtype === 'float32' && b.dtype === 'float32' && wasmGroupedMatMulAvailable()) {
    const [M, K] = a.shape;
    const N = b.shape[1];
    return tf.tidy(() => {
      const product = runWasmGroupedMatMul(tf.reshape(a, [1, M, K]) as tf.Tensor3D, tf.reshape(b, [1, K, N]) as tf.Tensor3D); // [1, M, N]
      return tf.reshape(product, [M, N]) as tf.Tensor2D; // [M, N]
    });
  }
  return tf.matMul(a, b);
}

/** `[M, K] · [K, N] → [M, N]` with an explicit-transpose gradient. */
export const matMul2d: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = tf.customGrad(
  ((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([a, b]);
    return {
      value: plainMatMul(a as tf.Tensor2D, b as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
        // dA = dY · Bᵀ   [M, N]·[N, K] ; dB = Aᵀ · dY   [K, M]·[M, N]
        return [plainMatMul(dy as tf.Tensor2D, transposeLastTwo(sb)), plainMatMul(transposeLastTwo(sa), dy as tf.Tensor2D)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * `[G, M, K] · [G, K, N] → [G, M, N]`. On wasm (float32, G > 1) through a kernel that runs each group
 * as a batch-of-one XNNPACK product on views of the operands (see `wasm-grouped-matmul.ts`); elsewhere
 * one `tf.matMul`, whose cpu and webgpu kernels batch natively. Same values either way (each output
 * element is the same K-term dot product); differentiable.
 *
 * Why: tfjs-wasm's BatchMatMul loops naively when the batch exceeds one (0.6–3 GFLOP/s here, against
 * 15–25 for the XNNPACK path); numbers in docs/performance.md.
 */
export function groupedMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  checkBatchShapes(a, b, 'groupedMatMul');
  if (a.shape[0] > 1 && a.dtype === 'float32' && b.dtype === 'float32' && wasmGroupedMatMulAvailable()) {
    return runWasmGroupedMatMul(a, b);
  }
  return tf.matMul(a, b);
}

/**
 * `[B, M, K] · [B, K, N] → [B, M, N]` with an explicit-transpose gradient; all three products (forward,
 * both gradients) go through {@link groupedMatMul}, so on wasm they reach XNNPACK.
 */
export const batchMatMul: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D = tf.customGrad(
  ((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    checkBatchShapes(a, b, 'batchMatMul');
    save([a, b]);
    return {
      value: groupedMatMul(a as tf.Tensor3D, b as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dy3 = dy as tf.Tensor3D;
        return [
          groupedMatMul(dy3, transposeLastTwo(sb)), // [B, M, N]·[B, N, K]
          groupedMatMul(transposeLastTwo(sa), dy3), // [B, K, M]·[B, M, N]
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

function checkBatchShapes(a: tf.Tensor, b: tf.Tensor, caller: string): void {
  if (a.rank !== 3 || b.rank !== 3 || a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) {
    throw new Error(`${caller}: a must be [B, M, K] and b [B, K, N] with equal B and K, got a [${a.shape}] and b [${b.shape}]`);
  }
}

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
