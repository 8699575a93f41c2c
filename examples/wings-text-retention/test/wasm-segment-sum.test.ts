/** The example-local wasm UnsortedSegmentSum kernel against a float64 loop, and through tf.gather's gradient. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerWasmSegmentSum } from '../src/wasm-segment-sum.js';

const onWasm = process.env.MLLM_TEST_BACKEND === 'wasm';

describe('registerWasmSegmentSum', () => {
  it.skipIf(!onWasm)('matches a float64 segment sum and gives tf.gather a gradient on wasm (other backends have their own kernel)', () => {
    registerWasmSegmentSum();
    const M = 5, D = 3, N = 4;
    const x = Array.from({ length: M * D }, (_, i) => Math.sin(i + 1));
    const ids = [2, 0, 2, 3, 0];
    const expected = new Float64Array(N * D);
    for (let m = 0; m < M; m++) for (let j = 0; j < D; j++) expected[ids[m] * D + j] += x[m * D + j];
    const before = tf.memory().numTensors;
    const got = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x, [M, D]), tf.tensor1d(ids, 'int32'), N).arraySync() as number[][]);
    got.flat().forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));

    // d/dparams Σ(w ⊙ gather(params, ids)) = segment sum of w rows by ids.
    const grad = tf.tidy(() => {
      const w = tf.tensor2d(x, [M, D]);
      return tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.gather(p, tf.tensor1d(ids, 'int32')), w)))(tf.zeros([N, D])).arraySync() as number[][];
    });
    grad.flat().forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    expect(tf.memory().numTensors).toBe(before);
  });
});
