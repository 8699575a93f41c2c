import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { clipGradNorm, globalGradNorm } from './index.js';
import { fixedMatrix } from './test-fixtures.js';

function float64Norm(arrays: number[][]): number {
  let sq = 0;
  for (const a of arrays) for (const v of a) sq += v * v;
  return Math.sqrt(sq);
}

describe('clipGradNorm', () => {
  it('returns the pre-clip global norm and scales by min(1, max/(norm+1e-6)) like torch', () => {
    const a = fixedMatrix(3, 4, 1).map((r) => r.map((v) => 5 * v));
    const b = fixedMatrix(1, 7, 2)[0];
    const grads = new Map<string, tf.Tensor>([['a', tf.tensor2d(a)], ['b', tf.tensor1d(b)]]);
    const norm = float64Norm([a.flat(), b]);
    const before = tf.memory().numTensors;
    const { grads: clipped, totalNorm } = clipGradNorm(grads, 1);
    expect(tf.memory().numTensors).toBe(before + 3);
    expect(totalNorm.dataSync()[0]).toBeCloseTo(norm, 5);
    expect([...clipped.keys()]).toEqual(['a', 'b']);
    const coef = 1 / (norm + 1e-6);
    const ca = clipped.get('a')!.dataSync();
    a.flat().forEach((v, i) => expect(ca[i]).toBeCloseTo(v * coef, 6));
    expect(globalGradNorm(clipped.values()).dataSync()[0]).toBeCloseTo(1, 5);
    // inputs untouched
    expect(grads.get('a')!.arraySync()).toEqual(tf.tensor2d(a).arraySync());
    tf.dispose([...clipped.values(), totalNorm, ...grads.values()]);
  });

  it('leaves gradients below the limit unchanged and works on arrays', () => {
    const g = [tf.tensor1d([0.3, -0.4])];
    const { grads, totalNorm } = clipGradNorm(g, 10);
    expect(totalNorm.dataSync()[0]).toBeCloseTo(0.5, 6);
    expect(Array.from(grads[0].dataSync())).toEqual(Array.from(g[0].dataSync()));
    tf.dispose([...g, ...grads, totalNorm]);
  });

  it('propagates a non-finite norm and rejects a bad maxNorm', () => {
    const g = [tf.tensor1d([NaN, 1])];
    const { grads, totalNorm } = clipGradNorm(g, 1);
    expect(Number.isNaN(totalNorm.dataSync()[0])).toBe(true);
    tf.dispose([...g, ...grads, totalNorm]);
    expect(() => clipGradNorm([], 0)).toThrow(/maxNorm must be a number > 0 \(Infinity allowed\), got 0/);
    const empty = globalGradNorm([]);
    expect(empty.dataSync()[0]).toBe(0);
    empty.dispose();
  });
});
