/**
 * Row gather with a gradient that works on every backend:
 *   y = x[indices]                      x [N, D], indices [M] → y [M, D]
 *   dx = Σ_m onehot(indices[m]) ⊗ dy[m]   (scatter-add of dy rows)
 * tfjs' own GatherV2 gradient uses UnsortedSegmentSum, which the wasm backend lacks and the cpu
 * backend runs in O(M·N); on those two the scatter-add runs in JS (one read of dy).
 */
import * as tf from '@tensorflow/tfjs-core';

function scatterAddRows(dy: tf.Tensor2D, indices: Int32Array, N: number): tf.Tensor2D {
  const backend = tf.getBackend();
  // cpu's UnsortedSegmentSum is O(M·N) (seconds for a vocab-sized scatter) and wasm has none:
  // there the scatter-add runs in JS (dataSync is free on CPU-side backends).
  if (backend !== 'cpu' && backend !== 'wasm' && tf.getKernel('UnsortedSegmentSum', backend)) {
    return tf.unsortedSegmentSum(dy, tf.tensor1d(indices, 'int32'), N) as tf.Tensor2D;
  }
  const D = dy.shape[1];
  const values = dy.dataSync();
  const out = new Float32Array(N * D);
  for (let m = 0; m < indices.length; m++) {
    const source = m * D;
    const target = indices[m] * D;
    for (let j = 0; j < D; j++) out[target + j] += values[source + j];
  }
  return tf.tensor2d(out, [N, D]);
}

/** `x [N, D]`, `indices` (each in [0, N)) → `[M, D]`; differentiable in x on all backends. */
export function gatherRows(x: tf.Tensor2D, indices: ArrayLike<number>): tf.Tensor2D {
  const index = Int32Array.from(indices);
  const N = x.shape[0];
  for (let m = 0; m < index.length; m++) {
    if (!Number.isInteger(indices[m]) || index[m] < 0 || index[m] >= N) throw new Error(`gatherRows: indices[${m}] must be in [0, ${N}), got ${index[m]}`);
  }
  const op = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    return {
      value: tf.gather(input, tf.tensor1d(index, 'int32')),
      gradFunc: (dy: tf.Tensor) => scatterAddRows(dy as tf.Tensor2D, index, N),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as tf.Tensor2D;
}
