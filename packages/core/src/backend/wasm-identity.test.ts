/**
 * The zero-copy Identity on wasm: `tf.clone` (and the clones tfjs saves for gradients) share the
 * data instead of copying it, and the data lives exactly as long as its last reference.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { matMul2d } from '../index.js';
import { skipOnBackend } from '../testing/index.js';

const skip = skipOnBackend(['cpu', 'webgpu', 'tensorflow'], 'the kernel is installed for the wasm backend only');

describe.skipIf(skip)('zero-copy Identity (wasm)', () => {
  it('is installed by initBackend and shares the data of a clone', () => {
    const kernel = tf.getKernel('Identity', 'wasm');
    expect((kernel?.kernelFunc as { zeroCopy?: boolean }).zeroCopy).toBe(true);
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const y = tf.clone(x);
    expect(y.dataId).toBe(x.dataId);
    expect(y.id).not.toBe(x.id);
    tf.dispose([x, y]);
  });

  it('keeps the data while any reference lives, frees it with the last one', () => {
    const bytesBefore = tf.memory().numBytes;
    const tensorsBefore = tf.memory().numTensors;
    const x = tf.tensor1d([5, 6, 7]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([5, 6, 7]);
    expect(tf.memory().numTensors).toBe(tensorsBefore + 1);
    const z = tf.add(y, 1); // a kernel reading the shared data after the original is gone
    expect(Array.from(z.dataSync())).toEqual([6, 7, 8]);
    tf.dispose([y, z]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.memory().numBytes).toBe(bytesBefore);
  });

  it('gradients that save inputs (clones) are unchanged and leave nothing behind', () => {
    const a = tf.tensor2d([[1, -2, 3], [0.5, 4, -1]]);
    const b = tf.tensor2d([[2, 0], [1, -1], [0, 3]]);
    const before = tf.memory().numTensors;
    const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(matMul2d(p as tf.Tensor2D, q as tf.Tensor2D))))([a, b]);
    // y = a·b; dL/dy = 2y; da = 2y·bᵀ, db = aᵀ·2y (float64 by hand)
    const y = [[1 * 2 - 2 * 1 + 0, 0 + 2 + 9], [1 + 4 + 0, 0 - 4 - 3]]; // [[0, 11], [5, -7]]
    const daExpected = y.map((row) => [0, 1, 2].map((k) => 2 * (row[0]! * [2, 1, 0][k]! + row[1]! * [0, -1, 3][k]!)));
    const aRows = [[1, -2, 3], [0.5, 4, -1]];
    const dbExpected = [0, 1, 2].map((k) => [0, 1].map((j) => 2 * aRows.reduce((s, row, i) => s + row[k]! * y[i]![j]!, 0)));
    expect(da!.arraySync()).toEqual(daExpected);
    expect(db!.arraySync()).toEqual(dbExpected);
    tf.dispose([da!, db!]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a, b]);
  });
});
