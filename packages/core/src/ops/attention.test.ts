/**
 * positionCausalMask against a plain loop (every backend: JS-built on cpu/wasm, broadcast compare elsewhere).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { positionCausalMask } from '../index.js';
import { expectNoLeaks } from '../testing/index.js';

describe('positionCausalMask', () => {
  it('is keyPosition ≤ queryPosition per sample, with batch broadcasting, without leaks', () => {
    const queries = [[3, 0, 7], [1, 2, 5]];
    const keys = [[0, 1, 2, 3, 9], [4, 1, 0, 2, 2]];
    const q = tf.tensor2d(queries, [2, 3], 'int32');
    const k = tf.tensor2d(keys, [2, 5], 'int32');
    const mask = positionCausalMask(q, k);
    expect(mask.shape).toEqual([2, 1, 3, 5]);
    expect(mask.dtype).toBe('bool');
    const expected = queries.map((row, b) => [row.map((qp) => keys[b]!.map((kp) => (kp <= qp ? 1 : 0)))]);
    expect((mask.arraySync() as unknown as number[][][][]).map((s) => s.map((r) => r.map((c) => c.map(Number))))).toEqual(expected);

    const k1 = tf.tensor2d([keys[0]!], [1, 5], 'float32'); // one key row for both samples
    const broadcast = positionCausalMask(q, k1);
    expect(broadcast.shape).toEqual([2, 1, 3, 5]);
    expect((broadcast.arraySync() as unknown as number[][][][]).map((s) => s.map((r) => r.map((c) => c.map(Number))))).toEqual(
      queries.map((row) => [row.map((qp) => keys[0]!.map((kp) => (kp <= qp ? 1 : 0)))]),
    );
    expectNoLeaks(() => positionCausalMask(q, k));
    const mismatched = tf.zeros([3, 5]) as tf.Tensor2D;
    expect(() => positionCausalMask(q, mismatched)).toThrow(/positionCausalMask: queryPositions \[2,3\] and keyPositions \[3,5\]/);
    tf.dispose([q, k, k1, mask, broadcast, mismatched]);
  });
});
