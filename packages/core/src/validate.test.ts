/**
 * The shared argument checks (every backend). The host model's poisoned-input table is in
 * @mllm/models (`model/poisoned-inputs.test.ts`).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { Linear, assertKnownKeys, batchMatMul, describeValue, linearForward, matMul2d, matMul2dTransposeB, zeroMasked } from './index.js';

describe('shared argument checks', () => {
  it('describeValue tells a numeric string from a number and bounds long strings', () => {
    expect(describeValue('64')).toBe('the string "64"');
    expect(describeValue(64)).toBe('64');
    expect(describeValue(NaN)).toBe('NaN');
    expect(describeValue([1, 2])).toBe('a plain array (length 2)');
    expect(describeValue(new Map())).toBe('a Map');
    expect(describeValue('x'.repeat(10_000)).length).toBeLessThan(60);
    const t = tf.zeros([2, 3], 'int32');
    expect(describeValue(t)).toBe('a int32 tensor [2, 3]');
    t.dispose();
    expect(describeValue(t)).toBe('a disposed int32 tensor [2, 3]');
  });

  it('assertKnownKeys names every unknown key and the nearest known one', () => {
    expect(() => assertKnownKeys('M', { numExpert: 1, zzz: 2 }, ['numExperts', 'hiddenSize'])).toThrow('M: unknown options "numExpert" (did you mean "numExperts"?), "zzz"; known: numExperts, hiddenSize');
    expect(() => assertKnownKeys('M', { name: 'x', trainable: false, hiddenSize: 1 }, ['hiddenSize'])).not.toThrow();
    // options that never reach a tfjs Layer: its keys are unknown like any other
    expect(() => assertKnownKeys('M', { name: 'x', dtype: 'float32', hiddenSize: 1 }, ['hiddenSize'], { layerKeys: false })).toThrow('M: unknown options "name", "dtype"; known: hiddenSize');
  });

  it('zeroMasked selects: NaN/Inf at dropped positions become exactly 0 (multiplying would keep NaN)', async () => {
    const x = tf.tensor3d([1, NaN, Infinity, 4, -Infinity, 6, NaN, 8], [2, 2, 2]);
    const keep = tf.tensor2d([[1, 0], [0, 1]]);
    const out = zeroMasked(x, keep);
    expect(Array.from(await out.data())).toEqual([1, NaN, 0, 0, 0, 0, NaN, 8]);
    const multiplied = tf.mul(x, tf.reshape(keep, [2, 2, 1]));
    const product = await multiplied.data();
    expect([product[2], product[4]]).toEqual([NaN, NaN]); // Inf · 0 at dropped positions
    tf.dispose([x, keep, out, multiplied]);
  });

  it('matrix products name each operand: undefined, plain arrays, rank, and both dtypes', () => {
    const a = tf.zeros([2, 3]) as tf.Tensor2D;
    const bi = tf.zeros([3, 4], 'int32') as tf.Tensor2D;
    expect(() => matMul2d(a, bi)).toThrow('matMul2d: a and b must have one dtype, got a float32 [2,3] and b int32 [3,4]');
    expect(() => matMul2d(undefined as never, a)).toThrow('matMul2d: a must be a tf.Tensor of rank 2, got undefined');
    expect(() => matMul2dTransposeB(a, [[1]] as never)).toThrow('matMul2dTransposeB: b must be a tf.Tensor of rank 2, got a plain array (length 1)');
    expect(() => batchMatMul(tf.zeros([1, 2, 3]) as tf.Tensor3D, a as never)).toThrow('batchMatMul: b must be a tf.Tensor of rank 3, got a float32 tensor [2, 3]');
    expect(() => new Linear(undefined as never)).toThrow('Linear: args must be an object, got undefined');
    expect(() => new Linear({ inFeatures: 3, outFeature: 2 } as never)).toThrow(/Linear: unknown option "outFeature" \(did you mean "outFeatures"\?\)/);
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    expect(() => layer.forward(tf.zeros([2, 3], 'int32'))).toThrow('linear: x must be float32 like the weight, got x int32 [2,3]');
    expect(() => linearForward(undefined as never, a)).toThrow('linear: x must be a tf.Tensor, got undefined');
    layer.dispose();
    tf.dispose([a, bi]);
  });
});
