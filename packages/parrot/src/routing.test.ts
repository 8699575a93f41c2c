import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { loadBalancingLoss, renormalizeTopK, topKMask } from './routing.js';
import { topIndices } from './testing/float64-moe.js';
import { createRng } from '@mllm/core';

describe('routing helpers', () => {
  it('topKMask selects the k largest per row, ties to the lower index (as the float64 reference)', () => {
    const rows = [
      [0.1, 0.4, 0.2, 0.3],
      [0.25, 0.25, 0.25, 0.25],
      [0.5, 0.1, 0.5, 0.1],
      [0.0, 0.0, 1.0, 0.0],
    ];
    for (const k of [1, 2, 3, 4]) {
      const mask = tf.tidy(() => topKMask(tf.tensor2d(rows), k).arraySync());
      const expected = rows.map((r) => { const keep = new Set(topIndices(r, k)); return r.map((_, i) => (keep.has(i) ? 1 : 0)); });
      expect(mask).toEqual(expected);
    }
  });

  it('topKMask agrees with sorting on random rows', () => {
    const rng = createRng(4);
    const rows = Array.from({ length: 20 }, () => Array.from({ length: 6 }, () => Math.fround(rng())));
    const mask = tf.tidy(() => topKMask(tf.tensor2d(rows), 2).arraySync());
    expect(mask).toEqual(rows.map((r) => { const keep = new Set(topIndices(r, 2)); return r.map((_, i) => (keep.has(i) ? 1 : 0)); }));
  });

  it('renormalizeTopK sums to 1 over the kept experts', () => {
    const p = [[0.1, 0.4, 0.2, 0.3]];
    const w = tf.tidy(() => renormalizeTopK(tf.tensor2d(p), topKMask(tf.tensor2d(p), 2)).arraySync()) as number[][];
    expect(w[0][0]).toBe(0);
    expect(w[0][2]).toBe(0);
    expect(w[0][1]).toBeCloseTo(0.4 / 0.7, 6);
    expect(w[0][3]).toBeCloseTo(0.3 / 0.7, 6);
  });

  it('load-balancing loss is 1 for a uniform router and E when everything goes to one expert', () => {
    const E = 4;
    const uniform = tf.fill([3, E], 1 / E) as tf.Tensor2D;
    const value = tf.tidy(() => loadBalancingLoss(uniform, tf.tensor2d([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]), 1).dataSync()[0]);
    // f = (1/3, 1/3, 1/3, 0), P = 1/4 each ⇒ E·Σ f·P = 4·(1/4) = 1
    expect(value).toBeCloseTo(1, 6);
    const collapsed = tf.tensor2d([[1, 0, 0, 0], [1, 0, 0, 0]]);
    expect(tf.tidy(() => loadBalancingLoss(collapsed, collapsed, 1).dataSync()[0])).toBeCloseTo(E, 6);
    tf.dispose([uniform, collapsed]);
  });
});
