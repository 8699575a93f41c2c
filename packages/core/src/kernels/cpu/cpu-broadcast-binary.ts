/**
 * Faster broadcasting for the cpu backend's float32 Add, Sub, Multiply and RealDiv.
 *
 * tfjs-cpu's binary kernels have a fast loop only when neither operand has a size-1 axis to stretch;
 * otherwise they convert every output index to coordinates and back for both operands (`indexToLoc`,
 * `locToIndex`): ~65–160 ns per element here (`[577, 1024]·[577, 1]`: 38.8 ms). That is the path of a
 * LayerNorm's `x − mean` and `· rsqrt(var)` (`[M, D]` against `[M, 1]`), of per-token router weights
 * (`[B, L, 1]`), of a routing weight per expert (`[B, 1, 1]`), and of their gradients. This replacement
 * walks the output row by row with one running offset per operand (~3 ns per element: 1.7 ms), and
 * computes each element with the same JavaScript expression as tfjs-cpu (`a + b`, `a − b`, `a · b`,
 * `a / b`, stored to float32), so the values are bitwise those of the original kernel. Everything else
 * (equal shapes, other dtypes, complex numbers) is passed to the original kernel, which it wraps.
 *
 * tfjs' kernel registry is global, so installing it affects every tfjs user in the process: it is
 * opt-in, `initBackend('cpu', { fastCpuKernels: true })` (the @mllm tests, examples and Parrot's own
 * expert workers opt in), and `uninstallFastCpuBroadcast()` puts tfjs' kernels back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { broadcastStrides, rowOffsets } from '../strided-rows.js';

type Operation = (a: number, b: number) => number;

const OPERATIONS: Readonly<Record<string, Operation>> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Multiply: (a, b) => a * b,
  RealDiv: (a, b) => a / b,
};

interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

type CpuKernelFunc = ((args: { inputs: tf.NamedTensorInfoMap; backend: CpuBackendLike; attrs?: tf.NamedAttrMap }) => tf.TensorInfo) & {
  fastBroadcast?: boolean;
  /** The tfjs kernel a fast one wraps (what `uninstallFastCpuBroadcast` registers again). */
  original?: CpuKernelFunc;
};

/** `out[i] = op(a[ia], b[ib])` over the broadcast shape, walking the output row by row. */
export function broadcastBinary(
  op: Operation, a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[], outShape: readonly number[],
): Float32Array {
  const rank = outShape.length;
  const size = outShape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(size);
  if (size === 0) return out;
  const aStrides = broadcastStrides(aShape, outShape);
  const bStrides = broadcastStrides(bShape, outShape);
  const inner = rank === 0 ? 1 : outShape[rank - 1]!;
  const aInner = rank === 0 ? 0 : aStrides[rank - 1]!;
  const bInner = rank === 0 ? 0 : bStrides[rank - 1]!;
  const [aRows, bRows] = rowOffsets(outShape, [aStrides, bStrides]) as [Int32Array, Int32Array];
  for (let row = 0, start = 0; start < size; row++, start += inner) {
    for (let j = 0, pa = aRows[row]!, pb = bRows[row]!; j < inner; j++, pa += aInner, pb += bInner) out[start + j] = op(a[pa]!, b[pb]!);
  }
  return out;
}

function fastKernel(original: CpuKernelFunc, op: Operation): CpuKernelFunc {
  const kernel: CpuKernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    if (sameShape || a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    const aValues = args.backend.data.get(a.dataId)?.values;
    const bValues = args.backend.data.get(b.dataId)?.values;
    if (!(aValues instanceof Float32Array) || !(bValues instanceof Float32Array)) return original(args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    return args.backend.makeTensorInfo(outShape, 'float32', broadcastBinary(op, aValues, a.shape, bValues, b.shape, outShape));
  };
  kernel.fastBroadcast = true;
  kernel.original = original;
  return kernel;
}

/** Replace the cpu backend's float32 broadcasting Add/Sub/Multiply/RealDiv (idempotent). Returns the kernels now fast. */
export function installFastCpuBroadcast(): string[] {
  const installed: string[] = [];
  for (const [name, op] of Object.entries(OPERATIONS)) {
    const current = tf.getKernel(name, 'cpu');
    if (!current) continue;
    const func = current.kernelFunc as unknown as CpuKernelFunc;
    if (func.fastBroadcast) {
      installed.push(name);
      continue;
    }
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({ ...current, kernelFunc: fastKernel(func, op) as unknown as tf.KernelFunc });
    installed.push(name);
  }
  return installed;
}

/** Put tfjs-cpu's own Add/Sub/Multiply/RealDiv kernels back (idempotent). Returns the kernels restored. */
export function uninstallFastCpuBroadcast(): string[] {
  const restored: string[] = [];
  for (const name of Object.keys(OPERATIONS)) {
    const current = tf.getKernel(name, 'cpu');
    const func = current?.kernelFunc as unknown as CpuKernelFunc | undefined;
    if (!current || !func?.fastBroadcast || !func.original) continue;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({ ...current, kernelFunc: func.original as unknown as tf.KernelFunc });
    restored.push(name);
  }
  return restored;
}
