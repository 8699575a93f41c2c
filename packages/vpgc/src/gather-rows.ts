/**
 * Row gather with a scatter-add gradient that every backend has.
 *
 * Why: `tf.gather`'s gradient uses `UnsortedSegmentSum`, which the wasm backend does not register.
 * Here the gradient is `scatterND` (duplicates summed), available on cpu, wasm and webgpu.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `table [R, H]`, `indices` (int32 values in [0, R)) `[M]` → `[M, H]` with `out[m] = table[indices[m]]`. */
export function gatherRows(table: tf.Tensor2D, indices: ArrayLike<number>): tf.Tensor2D {
  const R = table.shape[0];
  for (let m = 0; m < indices.length; m++) {
    const i = indices[m];
    if (!Number.isInteger(i) || i < 0 || i >= R) throw new Error(`gatherRows: index ${m} must be in [0, ${R}), got ${i}`);
  }
  const rowIndices = Int32Array.from(indices);
  const gather = tf.customGrad(((t: tf.Tensor, save: tf.GradSaveFunc) => {
    const index = tf.tensor1d(rowIndices, 'int32');
    const value = tf.gather(t, index); // [M, H]
    index.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => tf.scatterND(tf.tensor2d(rowIndices, [rowIndices.length, 1], 'int32'), dy, t.shape)), // [R, H], duplicates summed
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (t: tf.Tensor2D) => tf.Tensor2D;
  return gather(table);
}
