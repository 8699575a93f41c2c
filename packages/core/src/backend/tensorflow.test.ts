import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../index.js';
import { loadTensorflowPackage } from './tensorflow-backend.js';

// Runs only in the `tensorflow` test project. Without @tensorflow/tfjs-node(-gpu) it is reported
// as skipped, never as passed.
const loaded = await loadTensorflowPackage();

describe.skipIf(!loaded.ok)('tensorflow backend (tfjs-node)', () => {
  it('starts by name and computes a matMul natively', async () => {
    const choice = await initBackend('tensorflow');
    expect(choice.backend).toBe('tensorflow');
    expect(tf.getBackend()).toBe('tensorflow');
    const product = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]]));
    expect(Array.from(await product.data())).toEqual([17, 39]);
  });
});
