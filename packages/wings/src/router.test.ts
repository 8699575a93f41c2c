import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { StateDictError, disposeStateDict, loadSafetensors, saveSafetensors } from '@mllm/core';
import { checkVariableGradients } from '@mllm/core/testing';
import { WingsRouter } from './router.js';
import { RELATIVE_TOLERANCE, maxRelativeError, randomAttentionProbs, randomMatrix, router64 } from './reference-math.testutil.js';

const MAX = 12;

function load(router: WingsRouter, weight: number[][], bias: number[]): void {
  const dict = new Map<string, tf.Tensor>([
    ['model.layers.0.reweight_module.linear.weight', tf.tensor2d(weight)],
    ['model.layers.0.reweight_module.linear.bias', tf.tensor1d(bias)],
  ]);
  router.loadStateDict(dict, { prefix: 'model.layers.0.reweight_module.' });
  disposeStateDict(dict);
}

function route(router: WingsRouter, probs: number[][][][]): { visual: number[][][]; textual: number[][][] } {
  return tf.tidy(() => {
    const out = router.forward(tf.tensor4d(probs));
    return { visual: out.visual.arraySync(), textual: out.textual.arraySync() };
  });
}

describe('WingsRouter', () => {
  it('has the reference parameters linear.weight [2, maxLength] and linear.bias [2]', () => {
    const router = new WingsRouter({ maxLength: MAX });
    expect(router.namedParameters().map(([n, p]) => `${n}:${p.referenceShape.join('x')}`)).toEqual([`linear.weight:2x${MAX}`, 'linear.bias:2']);
    const sd = router.stateDict('model.layers.5.reweight_module.');
    expect([...sd.keys()]).toEqual(['model.layers.5.reweight_module.linear.weight', 'model.layers.5.reweight_module.linear.bias']);
    // PyTorch default Linear init U(±1/√in).
    const w = Array.from(sd.get('model.layers.5.reweight_module.linear.weight')!.dataSync());
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(MAX));
    disposeStateDict(sd);
    router.dispose();
  });

  it('a zero router gives 0.5 / 0.5', () => {
    const router = new WingsRouter({ maxLength: MAX });
    load(router, [new Array(MAX).fill(0), new Array(MAX).fill(0)], [0, 0]);
    const { visual, textual } = route(router, randomAttentionProbs(1, 2, 3, 5, 5));
    expect(visual.flat(2)).toEqual(new Array(10).fill(0.5));
    expect(textual.flat(2)).toEqual(new Array(10).fill(0.5));
    router.dispose();
  });

  it('matches an independent float64 computation using only the first L columns', () => {
    const router = new WingsRouter({ maxLength: MAX });
    const weight = randomMatrix(3, 2, MAX, 2);
    const bias = [0.3, -0.2];
    load(router, weight, bias);
    const probs = randomAttentionProbs(5, 2, 3, 6, 6);
    const before = tf.memory().numTensors;
    const got = route(router, probs);
    expect(tf.memory().numTensors).toBe(before);
    const expected = router64(weight, bias, probs);
    expect(maxRelativeError(got.visual, expected.map((b) => b.map((t) => [t[0]])))).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(got.textual, expected.map((b) => b.map((t) => [t[1]])))).toBeLessThan(RELATIVE_TOLERANCE);
    for (const [v, t] of got.visual.flat().map((v, i) => [v[0], got.textual.flat()[i][0]])) expect(v + t).toBeCloseTo(1, 6);
    // Columns ≥ L never matter.
    const changed = weight.map((row) => row.map((v, j) => (j >= 6 ? v + 100 : v)));
    load(router, changed, bias);
    expect(route(router, probs)).toEqual(got);
    router.dispose();
  });

  it('rejects a sequence longer than maxLength and bad ranks with clear errors', () => {
    const router = new WingsRouter({ maxLength: 4 });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      expect(() => router.forward(tf.zeros([1, 2, 5, 5]))).toThrowError(/key length L = 5 exceeds the router's maxLength 4/);
      expect(() => router.forward(tf.zeros([2, 5, 5]))).toThrowError(/attentionProbs must be \[B, heads, Lq, L\], got \[2, 5, 5\]/);
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(() => new WingsRouter({ maxLength: 0 })).toThrowError(/maxLength must be a positive integer/);
    router.dispose();
  });

  it('strict loading reports wrong shapes and missing keys', () => {
    const router = new WingsRouter({ maxLength: MAX });
    const bad = new Map<string, tf.Tensor>([['linear.weight', tf.zeros([MAX, 2])]]);
    expect(() => router.loadStateDict(bad)).toThrowError(StateDictError);
    expect(() => router.loadStateDict(bad)).toThrowError(/missing keys: linear\.bias[\s\S]*size mismatch for linear\.weight: expected \[2,12\]/);
    disposeStateDict(bad);
    router.dispose();
  });

  it('gradients match central differences (weights and attention probabilities)', () => {
    const router = new WingsRouter({ maxLength: MAX });
    load(router, randomMatrix(9, 2, MAX, 1), [0.1, 0.2]);
    const probs = tf.variable(tf.tensor4d(randomAttentionProbs(11, 2, 2, 4, 4)));
    const mix = tf.tensor3d([[[1], [-2], [0.5], [3]], [[0.7], [1], [-1], [2]]]);
    const before = tf.memory().numTensors;
    const loss = () =>
      tf.tidy(() => {
        const { visual, textual } = router.forward(probs);
        return tf.sum(tf.add(tf.mul(visual, mix), tf.mul(tf.square(textual), 2))) as tf.Scalar;
      });
    const report = checkVariableGradients(loss, [...router.trainableVariables(), probs], { epsilon: 1e-2, maxElementsPerInput: 16, label: 'WingsRouter' });
    expect(report.checked).toBe(16 + 2 + 16);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([probs, mix]);
    router.dispose();
  });
});

describe('WingsRouter state dict round trip', () => {
  it('stateDict(prefix) -> safetensors -> a fresh router loadStateDict(…, { prefix }) -> identical routing', () => {
    const source = new WingsRouter({ maxLength: MAX });
    load(source, randomMatrix(81, 2, MAX, 2), [0.3, -0.2]);
    const probs = randomAttentionProbs(82, 2, 3, 5, 5);
    const expected = route(source, probs);
    const prefix = 'model.layers.4.reweight_module.';
    const dict = source.stateDict(prefix);
    const bytes = saveSafetensors(dict);
    disposeStateDict(dict);
    const { tensors } = loadSafetensors(bytes);
    const fresh = new WingsRouter({ maxLength: MAX });
    expect(route(fresh, probs)).not.toEqual(expected);
    fresh.loadStateDict(Object.fromEntries(tensors), { prefix });
    expect(route(fresh, probs)).toEqual(expected);
    disposeStateDict(tensors);
    source.dispose();
    fresh.dispose();
  });
});
