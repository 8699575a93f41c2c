import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, loadStateDict, stateDict, disposeStateDict, setSeed, StateDictError } from '../index.js';

describe('Linear', () => {
  it('computes x·Wᵀ + b with W in [out, in] at the state-dict boundary', () => {
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    const W = [[1, 2, 3], [4, 5, 6]];
    const b = [0.5, -1];
    loadStateDict(layer, new Map<string, tf.Tensor>([['weight', tf.tensor2d(W)], ['bias', tf.tensor1d(b)]]));
    const x = [[1, 0, -1], [2, 1, 0]];
    const y = layer.forward(tf.tensor2d(x)).arraySync() as number[][];
    for (let i = 0; i < 2; i++) for (let o = 0; o < 2; o++) {
      const expected = x[i].reduce((s, v, k) => s + v * W[o][k], b[o]);
      expect(y[i][o]).toBeCloseTo(expected, 5);
    }
    const sd = stateDict(layer);
    expect(sd.get('weight')!.arraySync()).toEqual(W);
    disposeStateDict(sd);
    layer.dispose();
  });
  it('reports all bad keys together and assigns nothing', () => {
    setSeed(1);
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    const before = layer.kernelValue.arraySync();
    const bad = new Map<string, tf.Tensor>([['weight', tf.zeros([3, 2])], ['extra', tf.zeros([1])]]);
    expect(() => loadStateDict(layer, bad)).toThrowError(StateDictError);
    try { loadStateDict(layer, bad); } catch (e) {
      expect(String(e)).toMatch(/missing keys: bias/);
      expect(String(e)).toMatch(/unexpected keys: extra/);
      expect(String(e)).toMatch(/size mismatch for weight: expected \[2,3\]/);
    }
    expect(layer.kernelValue.arraySync()).toEqual(before);
    layer.dispose();
  });
  it('gradient through the custom matMul matches tfjs autodiff', () => {
    const x = tf.randomNormal([4, 3], 0, 1, 'float32', 3);
    const layer = new Linear({ inFeatures: 3, outFeatures: 5 });
    const vars = layer.trainableVariables();
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.forward(x))) as tf.Scalar, vars);
    const { grads: ref } = tf.variableGrads(
      () => tf.sum(tf.square(tf.add(tf.matMul(x, layer.kernelValue), layer.biasValue!))) as tf.Scalar, vars);
    for (const v of vars) {
      expect(tf.max(tf.abs(tf.sub(grads[v.name], ref[v.name]))).dataSync()[0]).toBeLessThan(1e-5);
    }
    layer.dispose();
  });
});
