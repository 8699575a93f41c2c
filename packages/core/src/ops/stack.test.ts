/**
 * repeatStack / stackFirstAxis / unstackFirstAxis: the same values as tf.broadcastTo / tf.stack /
 * tf.unstack (copies; the repeat's gradient to float32 rounding), gradients against central differences and against the closed forms, no leaks.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { repeatStack, stackFirstAxis, sumOverAxis1, unstackFirstAxis, WASM_UNSTACK } from './stack.js';
import { checkGradients, expectClose, expectNoLeaks, testBackend } from '../testing/index.js';

const random = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed);

describe('stacking along a new first axis', () => {
  it('repeatStack equals broadcastTo, its gradient is the sum over the copies', () => {
    const x = random([3, 4], 1);
    const y = repeatStack(x, 5);
    expect(y.shape).toEqual([5, 3, 4]);
    expect(Array.from(y.dataSync())).toEqual(Array.from(tf.broadcastTo(tf.expandDims(x, 0), [5, 3, 4]).dataSync()));
    const weights = random([5, 3, 4], 2);
    const [dx] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(repeatStack(v, 5), weights)))([x]);
    const expected = tf.unstack(weights).reduce((acc, w) => tf.add(acc, w)); // Σ over the copies
    expectClose(dx!, expected, { rtol: 1e-6, atol: 1e-6 }); // wasm's Sum may add in another order
    checkGradients((v) => tf.sum(tf.mul(repeatStack(v!, 5), weights)), [x]);
    expectNoLeaks(() => repeatStack(x, 5));
    expectNoLeaks(() => tf.grads((v: tf.Tensor) => tf.sum(repeatStack(v, 3)))([x]));
    const single = repeatStack(x, 1);
    expect(single.shape).toEqual([1, 3, 4]);
    tf.dispose([x, y, weights, dx!, expected, single]);
  });

  it('repeatStack names a bad copy count', () => {
    const x = tf.zeros([2]);
    expect(() => repeatStack(x, 0)).toThrow(/repeatStack: copies must be a positive integer, got 0/);
    expect(() => repeatStack(x, 1.5)).toThrow(/got 1\.5/);
    x.dispose();
  });

  it(`unstackFirstAxis equals tf.unstack${testBackend() === 'wasm' ? ' (one block copy per piece on wasm)' : ''}`, async () => {
    const x = random([4, 3, 5], 3);
    const pieces = unstackFirstAxis(x);
    const reference = tf.unstack(x);
    expect(pieces.map((p) => p.shape)).toEqual(reference.map((p) => p.shape));
    pieces.forEach((p, g) => expect(Array.from(p.dataSync())).toEqual(Array.from(reference[g]!.dataSync())));
    if (testBackend() === 'wasm') {
      const info = await tf.profile(() => unstackFirstAxis(x));
      expect(info.kernels.map((k) => k.name)).toEqual([WASM_UNSTACK]);
    }
    expectNoLeaks(() => unstackFirstAxis(x));
    const weights = random([3, 5], 13);
    const [dx] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(unstackFirstAxis(v)[1]!, weights)))([x]); // only piece 1 used
    const expected = tf.stack([tf.zeros([3, 5]), weights, tf.zeros([3, 5]), tf.zeros([3, 5])]);
    expect(Array.from(dx!.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, ...pieces, ...reference, weights, dx!, expected]);
  });

  it('stackFirstAxis equals tf.stack, its gradients are the pieces of dy', () => {
    const parts = [random([2, 3], 4), random([2, 3], 5), random([2, 3], 6)];
    const y = stackFirstAxis(parts);
    expect(Array.from(y.dataSync())).toEqual(Array.from(tf.stack(parts).dataSync()));
    const weights = random([3, 2, 3], 7);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(stackFirstAxis([a, b, c]), weights)))(parts);
    const expected = tf.unstack(weights);
    grads.forEach((g, i) => expect(Array.from(g.dataSync())).toEqual(Array.from(expected[i]!.dataSync())));
    checkGradients((a, b, c) => tf.sum(tf.mul(stackFirstAxis([a!, b!, c!]), weights)), parts);
    expectNoLeaks(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(stackFirstAxis([a, b])))(parts.slice(0, 2)));
    expect(() => stackFirstAxis([])).toThrow(/stackFirstAxis: needs at least one tensor/);
    tf.dispose([...parts, y, weights, ...grads, ...expected]);
  });
});

describe('sumOverAxis1', () => {
  for (const shape of [[1, 4, 3, 5], [3, 2, 6], [2, 5, 2, 2]]) {
    it(`[${shape}] equals tf.sum(x, 1), its gradient repeats dy over axis 1, without leaks`, () => {
      const x = random(shape, shape.length * 7);
      const y = sumOverAxis1(x);
      expectClose(y, tf.sum(x, 1), { rtol: 1e-6, atol: 1e-6 });
      expect(y.shape).toEqual([shape[0], ...shape.slice(2)]);
      const weights = random(y.shape, 9);
      const [dx] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(sumOverAxis1(v), weights)))([x]);
      expect(Array.from(dx!.dataSync())).toEqual(Array.from(tf.broadcastTo(tf.expandDims(weights, 1), shape).dataSync()));
      checkGradients((v) => tf.sum(tf.mul(sumOverAxis1(v!), weights)), [x]);
      expectNoLeaks(() => sumOverAxis1(x));
      expectNoLeaks(() => tf.grads((v: tf.Tensor) => tf.sum(sumOverAxis1(v)))([x]));
      tf.dispose([x, y, weights, dx!]);
    });
  }

  it('names a tensor with fewer than two axes', () => {
    const x = tf.zeros([3]);
    expect(() => sumOverAxis1(x)).toThrow(/sumOverAxis1: x must have at least 2 axes \[B, G, \.\.\.\], got \[3\]/);
    x.dispose();
  });
});
