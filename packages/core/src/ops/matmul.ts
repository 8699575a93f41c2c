/**
 * Matrix products with gradients that use only plain (non-transposed) matMuls.
 *
 * Why: on the wasm backend only 2-D matMuls without transposed operands reach XNNPACK
 * (~25 GFLOP/s here); tfjs' own MatMul gradient uses transposed operands (~2 GFLOP/s).
 * Transposing explicitly, then multiplying plainly, made a 577×1024×1024 backward 23× faster.
 */
import * as tf from '@tensorflow/tfjs-core';
import { transposeLastTwo } from './transpose.js';
import { groupedMatMulKernel, runWasmGroupedMatMul, wasmGroupedMatMulAvailable, wasmKernelUsable } from '../kernels/wasm/wasm-grouped-matmul.js';
import { assertTensor } from '../validate.js';

/**
 * On wasm, a 2-D product whose right operand has at least this many elements runs through the
 * grouped kernel with G = 1 (a temporary view of the operand), so XNNPACK's operator — which holds a
 * packed copy of that operand — is released right after the call instead of being cached for the
 * operand's lifetime. Repacking costs ~1–2 % of such a product; the cache would double the memory of
 * large weights (a 4096-wide ParrotMoE: 1.15 GB of packed copies next to 1.15 GB of weights).
 */
export const UNCACHED_PACKING_MIN_ELEMENTS = 8 * 1024 * 1024;

/** Kernel name of {@link matMul2d} (registered per backend on first use). */
export const MATMUL_2D_KERNEL = 'MllmMatMul2d';

/**
 * Forward: the backend's own BatchMatMul kernel (non-transposed), or on wasm for a large right
 * operand the view-based kernel that leaves no cached packed copy.
 */
function matMul2dKernelFor(backendName: string): tf.KernelFunc {
  return ((args: { inputs: tf.NamedTensorInfoMap; backend: unknown }) => {
    const a = args.inputs.a!;
    const b = args.inputs.b!;
    const bSize = b.shape.reduce((x, y) => x * y, 1);
    if (backendName === 'wasm' && bSize >= UNCACHED_PACKING_MIN_ELEMENTS && a.dtype === 'float32' && b.dtype === 'float32' && wasmKernelUsable(args.backend)) {
      return groupedMatMulKernel({ inputs: { a, b }, backend: args.backend });
    }
    const batchMatMulKernel = tf.getKernel('BatchMatMul', backendName);
    if (!batchMatMulKernel) throw new Error(`matMul2d: backend '${backendName}' has no BatchMatMul kernel`);
    return batchMatMulKernel.kernelFunc({ inputs: { a, b }, backend: args.backend as tf.KernelBackend, attrs: { transposeA: false, transposeB: false } });
  }) as unknown as tf.KernelFunc;
}

function ensureMatMul2dKernel(): void {
  const backendName = tf.getBackend();
  if (tf.getKernel(MATMUL_2D_KERNEL, backendName) === undefined) {
    tf.registerKernel({ kernelName: MATMUL_2D_KERNEL, backendName, kernelFunc: matMul2dKernelFor(backendName) });
  }
  if (tf.getGradient(MATMUL_2D_KERNEL) === undefined) {
    tf.registerGradient({
      kernelName: MATMUL_2D_KERNEL,
      inputsToSave: ['a', 'b'],
      // Per input and lazy: tfjs evaluates only the gradients of inputs on a path to the variables
      // asked for, so a frozen weight costs no Aᵀ·dY product (a customGrad computes both).
      gradFunc: (dy, saved) => {
        const [a, b] = saved as [tf.Tensor2D, tf.Tensor2D];
        return {
          a: () => matMul2dTransposeB(dy as tf.Tensor2D, b), // dA = dY · Bᵀ   [M, N]·[N, K]
          b: () => matMul2d(transposeLastTwo(a), dy as tf.Tensor2D), // dB = Aᵀ · dY   [K, M]·[M, N]
        };
      },
    });
  }
}

/**
 * `a · bᵀ` for `a [M, N]`, `b [K, N]` → `[M, K]` with plain products only, in whichever of two
 * equal-FLOP forms moves fewer elements through transposes:
 *
 * - `a · (bᵀ)`: transposes `b` (K·N elements), and on wasm XNNPACK packs the fresh `bᵀ` (K·N again);
 * - `(b · aᵀ)ᵀ`: transposes `a` and the `[K, M]` result (M·N + K·M elements); the packed right
 *   operand is the small `aᵀ`.
 *
 * The second wins when M·(N + K) < K·N, i.e. few rows against a large weight: a backward `dY·Wᵀ`
 * with M = 32 query rows against a 768×768 weight ran 3.1 → 1.0 ms on wasm (docs/performance.md).
 */
export function matMul2dTransposeB(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  checkOperands('matMul2dTransposeB', a, b, 2);
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[1]) {
    throw new Error(`matMul2dTransposeB: a must be [M, N] and b [K, N] with equal N, got a [${a.shape}] and b [${b.shape}]`);
  }
  const [M, N] = a.shape;
  const K = b.shape[0];
  if (M * (N + K) < K * N) {
    return tf.tidy(() => transposeLastTwo(matMul2d(b, transposeLastTwo(a)))); // ([K, N]·[N, M])ᵀ
  }
  return tf.tidy(() => matMul2d(a, transposeLastTwo(b))); // [M, N]·[N, K]
}

/**
 * `[M, K] · [K, N] → [M, N]`. Gradients use explicit transposes and plain products (fast on wasm), and
 * are computed per input only when needed (no weight gradient for frozen weights).
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  checkOperands('matMul2d', a, b, 2);
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[0]) {
    throw new Error(`matMul2d: a must be [M, K] and b [K, N] with equal K, got a [${a.shape}] and b [${b.shape}]`);
  }
  ensureMatMul2dKernel();
  return tf.engine().runKernel(MATMUL_2D_KERNEL, { a, b } as unknown as tf.NamedTensorMap, {}) as tf.Tensor2D;
}

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

/**
 * `[B, M, K] · [B, N, K]ᵀ → [B, M, N]` (attention scores `q·kᵀ` from `q`, `k` as they are), with
 * explicit gradients that need no transposes of `b`:
 *
 *   forward  a · bᵀ              (one transpose of b, then {@link groupedMatMul})
 *   da =     dY · b              [B, M, N]·[B, N, K], no transpose
 *   db =     dYᵀ · a             [B, N, M]·[B, M, K]
 *
 * Against `batchMatMul(a, transpose(b))` the backward saves transposing `bᵀ` back for `da`, and for
 * `db` transposes `dY` once instead of transposing `a`, the `[B, K, N]` result and packing `dY`
 * (XNNPACK packs the right operand of every group): on wasm, Wings' textual learner (16 heads,
 * L = 256, d = 64) scores forward+backward ~2.5 ms faster. Same values (the same dot products).
 */
export const batchMatMulTransposeB: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D = tf.customGrad(
  ((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    checkOperands('batchMatMulTransposeB', a, b, 3);
    if (a.rank !== 3 || b.rank !== 3 || a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[2]) {
      throw new Error(`batchMatMulTransposeB: a must be [B, M, K] and b [B, N, K] with equal B and K, got a [${a.shape}] and b [${b.shape}]`);
    }
    save([a, b]);
    return {
      value: groupedMatMul(a as tf.Tensor3D, transposeLastTwo(b as tf.Tensor3D)), // [B, M, K]·[B, K, N]
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dy3 = dy as tf.Tensor3D;
        return [
          groupedMatMul(dy3, sb), // [B, M, N]·[B, N, K]
          groupedMatMul(transposeLastTwo(dy3), sa), // [B, N, M]·[B, M, K]
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** Both operands live tensors of `rank`, of one dtype (the message names each operand's dtype). */
function checkOperands(caller: string, a: unknown, b: unknown, rank: number): void {
  assertTensor(caller, 'a', a, { rank });
  assertTensor(caller, 'b', b, { rank });
  if (a.dtype !== b.dtype) throw new Error(`${caller}: a and b must have one dtype, got a ${a.dtype} [${a.shape}] and b ${b.dtype} [${b.shape}]`);
}

function checkBatchShapes(a: tf.Tensor, b: tf.Tensor, caller: string): void {
  checkOperands(caller, a, b, 3);
  if (a.rank !== 3 || b.rank !== 3 || a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) {
    throw new Error(`${caller}: a must be [B, M, K] and b [B, K, N] with equal B and K, got a [${a.shape}] and b [${b.shape}]`);
  }
}

/**
 * `x [..., K] · W [K, N] (+ b [N]) → [..., N]`: leading dims flattened so the product is 2-D.
 */
export function linearForward(x: tf.Tensor, kernel: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor {
  assertTensor('linear', 'x', x);
  if (x.dtype !== kernel.dtype) throw new Error(`linear: x must be ${kernel.dtype} like the weight, got x ${x.dtype} [${x.shape}]`);
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
