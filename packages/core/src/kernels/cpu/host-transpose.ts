/**
 * A transpose kernel in JavaScript for the `cpu` backend.
 *
 * Why: tfjs-cpu's Transpose computes a multi-index per element (~45 ns per element here: 46 ms for a
 * `[16, 256, 256]` batch of score matrices, 88 ms for six head splits of `[1, 256, 16, 64]` in one
 * Wings forward+backward). Walking the output in order with a running input offset costs ~2 ns per
 * element, and a permutation that keeps the last axis copies whole rows. Exact (a permutation).
 * On wasm tfjs' own Transpose (plus the tiled one of `transpose.ts`) is as fast as this, so it stays.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostDataAccessible, registerKernelsOnce, withFloat32Output } from '../host-tensor-data.js';
import { rowOffsets } from '../strided-rows.js';

/** Kernel name, registered for `cpu`. */
export const HOST_TRANSPOSE = 'MllmHostTranspose';

interface TransposeAttrs {
  perm: number[];
}

/** Output element order, input read by strides: `out[i₀, …, iₙ] = x[i at perm]`. */
function permute(out: Float32Array, x: Float32Array, shape: number[], perm: number[]): void {
  const rank = shape.length;
  const inputStrides = new Array<number>(rank);
  for (let axis = rank - 1, stride = 1; axis >= 0; axis--) {
    inputStrides[axis] = stride;
    stride *= shape[axis]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const strides = perm.map((p) => inputStrides[p]!); // input step per output axis
  const inner = outShape[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const [sources] = rowOffsets(outShape, [strides]) as [Int32Array];
  for (let row = 0, target = 0; row < sources.length; row++, target += inner) {
    const source = sources[row]!;
    if (innerStride === 1) {
      out.set(x.subarray(source, source + inner), target); // the last axis kept: copy a row
    } else {
      for (let j = 0, i = source; j < inner; j++, i += innerStride) out[target + j] = x[i]!;
    }
  }
}

function kernelFunc(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = args.inputs.x!;
  const perm = (args.attrs as unknown as TransposeAttrs).perm;
  return withFloat32Output(args.backend, perm.map((p) => x.shape[p]!), (out, read) => permute(out, read(x) as Float32Array, x.shape, perm));
}

const GRADIENT: tf.GradConfig = {
  kernelName: HOST_TRANSPOSE,
  gradFunc: (dy, _saved, attrs) => {
    const perm = (attrs as unknown as TransposeAttrs).perm;
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return { x: () => runHostTranspose(dy as tf.Tensor, inverse) };
  },
};

/** Registers the kernel on cpu; returns whether the active backend runs it. */
export function hostTransposeAvailable(): boolean {
  if (tf.getBackend() !== 'cpu' || !hostDataAccessible('cpu')) return false;
  registerKernelsOnce([{ kernelName: HOST_TRANSPOSE, backendName: 'cpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc }], [GRADIENT]);
  return true;
}

/** `tf.transpose(x, perm)` through {@link HOST_TRANSPOSE}; float32 only, after {@link hostTransposeAvailable}. */
export function runHostTranspose(x: tf.Tensor, perm: number[]): tf.Tensor {
  const attrs: TransposeAttrs = { perm };
  return tf.engine().runKernel(HOST_TRANSPOSE, { x } as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
