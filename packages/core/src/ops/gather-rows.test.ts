import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from './gather-rows.js';
import { expectNoLeaks } from '@mllm/core/testing';

describe('gatherRows', () => {
  it('gathers rows and scatter-adds the gradient (duplicates summed), checked by central differences', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const idx = [2, 0, 2, 2];
    expect(gatherRows(x, idx).arraySync()).toEqual([[5, 6], [1, 2], [5, 6], [5, 6]]);
    const w = [[0.5, -1], [2, 0.25], [-0.75, 1.5], [1, 1]];
    const f = (v: tf.Tensor) => tf.sum(tf.mul(tf.square(gatherRows(v as tf.Tensor2D, idx)), tf.tensor2d(w)));
    const g = tf.grad(f)(x).arraySync() as number[][];
    // float64 central differences of Σ w·gather(x)²
    const base = x.arraySync();
    const value = (xs: number[][]) => idx.reduce((s, r, m) => s + xs[r].reduce((a, v, j) => a + w[m][j] * v * v, 0), 0);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) {
      const plus = base.map((r) => [...r]); plus[i][j] += 1e-4;
      const minus = base.map((r) => [...r]); minus[i][j] -= 1e-4;
      expect(g[i][j]).toBeCloseTo((value(plus) - value(minus)) / 2e-4, 3);
    }
    expect(g[1]).toEqual([0, 0]);
    expect(() => gatherRows(x, [3])).toThrow(/indices\[0\] must be in \[0, 3\), got 3/);
    expectNoLeaks(() => tf.grad(f)(x));
    x.dispose();
  });
});
