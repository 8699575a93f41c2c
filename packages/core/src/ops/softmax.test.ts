import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { maskedSoftmax } from '../index.js';
import { expectClose } from '../testing/index.js';

/** float64 masked softmax of one row: positions with a falsy mask entry (0, NaN) dropped. */
function reference(logits: number[], mask: number[]): number[] {
  const kept = logits.map((_, j) => Boolean(mask[j]));
  const max = Math.max(...logits.filter((_, j) => kept[j]));
  const e = logits.map((x, j) => (kept[j] ? Math.exp(x - max) : 0));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => (sum > 0 ? v / sum : 0));
}

describe('maskedSoftmax mask entries', () => {
  it('NaN drops a position and any other nonzero keeps it, on every backend (as the cpu kernel)', () => {
    const logits = [0.5, 3, -1, 2, 1.5];
    for (const mask of [[1, NaN, 1, 0, 1], [0.5, -1, 0, 2, NaN], [NaN, NaN, NaN, NaN, NaN]]) {
      const out = maskedSoftmax(tf.tensor2d([logits]), tf.tensor2d([mask]));
      expectClose(out, [reference(logits, mask)]);
      // the generic (non-cpu-kernel) path: a mask that broadcasts from the right is the same rule
      const along = maskedSoftmax(tf.tensor3d([logits.map((x) => [x])]), tf.tensor3d([mask.map((m) => [m])]), 1);
      expectClose(along, [reference(logits, mask).map((p) => [p])]);
      tf.dispose([out, along]);
    }
  });
});
