import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX, planSequence, spliceEmbeddings, causalPaddingMask, collate, disposeBatch } from '../index.js';
import { expectNoLeaks } from '@mllm/core/testing';

const IMG = 99;
const PAD = 0;
const I = IGNORE_INDEX;

describe('planSequence / spliceEmbeddings', () => {
  // sample 0: two images, sample 1: one image and shorter (padding); Ni = 3
  const ids = [[5, IMG, 6, IMG, 7, 8], [9, IMG, 4]];
  const labels = [[I, I, I, I, 7, 8], [I, I, 4]];
  const system = [[1, 0, 0, 0, 0, 0], [1, 0, 0]];
  const plan = planSequence({ ids, labels, systemMask: system, imageTokenId: IMG, padId: PAD, tokensPerImage: 3 });

  it('places image tokens at the placeholders and right-pads', () => {
    expect(plan.lengths).toEqual([6 - 2 + 6, 3 - 1 + 3]);
    expect(plan.length).toBe(10);
    expect(plan.textLength).toBe(6);
    expect(plan.imageSpans).toEqual([
      [{ imageIndex: 0, start: 1, length: 3 }, { imageIndex: 1, start: 5, length: 3 }],
      [{ imageIndex: 2, start: 1, length: 3 }],
    ]);
    expect(plan.imageToSample).toEqual([0, 0, 1]);
    expect(plan.hasImage).toEqual([1, 1]);
    const T = 6, V = 2 * T; // visual rows start at B·T; zero row at B·T + 3·3
    const zero = V + 9;
    expect(Array.from(plan.sourceIndex)).toEqual([
      0, V + 0, V + 1, V + 2, 2, V + 3, V + 4, V + 5, 4, 5,
      T + 0, V + 6, V + 7, V + 8, T + 2, zero, zero, zero, zero, zero,
    ]);
    expect(Array.from(plan.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(plan.textMask)).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(plan.promptMask)).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(plan.systemMask)).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(plan.labels!)).toEqual([I, I, I, I, I, I, I, I, 7, 8, I, I, I, I, 4, I, I, I, I, I]);
    expect(Array.from(plan.positions.subarray(10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // last prompt token: the one before the first supervised label (sample 0: pos 7 = last image token)
    expect(plan.lastPromptIndex).toEqual([7, 3]);
    expect(Array.from(plan.textIds)).toEqual([5, PAD, 6, PAD, 7, 8, 9, PAD, 4, PAD, PAD, PAD]);
    expect(Array.from(plan.promptTextMask)).toEqual([1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('lastPromptIndex is the last real token without labels; mismatched labels are rejected', () => {
    const p = planSequence({ ids, imageTokenId: IMG, padId: PAD, tokensPerImage: 2 });
    expect(p.lastPromptIndex).toEqual([7, 3]);
    expect(p.labels).toBeNull();
    expect(Array.from(p.promptMask).reduce((a, b) => a + b, 0)).toBe(4 + 2);
    expect(() => planSequence({ ids, labels: [[1], [2]], imageTokenId: IMG, padId: PAD, tokensPerImage: 2 }))
      .toThrow(/labels\[0\] must have length 6 \(ids\[0\]\), got 1/);
  });

  it('splices rows exactly (values and gradients)', () => {
    const H = 2;
    const text = tf.tensor3d(Array.from({ length: 2 * 6 * H }, (_, i) => i + 1), [2, 6, H]);
    const visual = tf.tensor3d(Array.from({ length: 3 * 3 * H }, (_, i) => -(i + 1)), [3, 3, H]);
    const spliced = spliceEmbeddings(text, visual, plan).arraySync();
    const textRows = text.reshape([12, H]).arraySync() as number[][];
    const visualRows = visual.reshape([9, H]).arraySync() as number[][];
    for (let b = 0; b < 2; b++) for (let p = 0; p < 10; p++) {
      const src = plan.sourceIndex[b * 10 + p];
      const expected = src < 12 ? textRows[src] : src < 21 ? visualRows[src - 12] : [0, 0];
      expect(spliced[b][p]).toEqual(expected);
    }
    // d/dvisual of Σ spliced·w equals w gathered back to each image row
    const w = tf.randomNormal([2, 10, H], 0, 1, 'float32', 3);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(spliceEmbeddings(text, v as tf.Tensor3D, plan), w)))(visual);
    const wv = w.arraySync() as number[][][];
    const gv = g.arraySync() as number[][][];
    plan.imageSpans.forEach((spans, b) => spans.forEach((s) => {
      for (let k = 0; k < 3; k++) expect(gv[s.imageIndex][k]).toEqual(wv[b][s.start + k].map((x) => Math.fround(x)));
    }));
    expect(() => spliceEmbeddings(text, tf.zeros([2, 3, H]) as tf.Tensor3D, plan)).toThrow(/visual must be \[3, 3, 2\], got \[2,3,2\]/);
    expectNoLeaks(() => spliceEmbeddings(text, visual, plan));
    tf.dispose([text, visual, w, g]);
  });

  it('builds a causal + key-padding mask', () => {
    const m = causalPaddingMask(tf.tensor2d([[1, 1, 0]], [1, 3])).arraySync() as unknown as boolean[][][][];
    expect(m[0][0].map((r) => r.map(Number))).toEqual([[1, 0, 0], [1, 1, 0], [1, 1, 0]]);
  });

  it('causal + key-padding mask equals (j ≤ i) ∧ key real for every sample, without leaks', () => {
    const keys = [[1, 1, 1, 0, 0], [1, 0, 1, 1, 1], [0, 0, 0, 0, 0]];
    const attentionMask = tf.tensor2d(keys, [3, 5], 'int32');
    const m = causalPaddingMask(attentionMask);
    expect(m.shape).toEqual([3, 1, 5, 5]);
    expect(m.dtype).toBe('bool');
    const expected = keys.map((row) => [row.map((_, i) => row.map((k, j) => (j <= i && k !== 0 ? 1 : 0)))]);
    expect((m.arraySync() as unknown as number[][][][]).map((b) => b.map((q) => q.map((r) => r.map(Number))))).toEqual(expected);
    expectNoLeaks(() => causalPaddingMask(attentionMask));
    tf.dispose([attentionMask, m]);
  });
});

describe('collate', () => {
  it('right-pads ids/labels/masks and stacks images in placeholder order', () => {
    const a = tf.fill([4, 4, 3], 0.25) as tf.Tensor3D;
    const b = tf.fill([4, 4, 3], 0.5) as tf.Tensor3D;
    const c = tf.fill([2, 4, 4, 3], 0.75) as tf.Tensor4D;
    const batch = collate([
      { inputIds: [1, IMG, IMG, 2], labels: [I, I, I, 2], images: [a, b] },
      { inputIds: [IMG, 3], labels: [I, 3], images: tf.slice(c, [0], [1]) as tf.Tensor4D },
    ], { padId: PAD, imageTokenId: IMG });
    expect(batch.inputIds.arraySync()).toEqual([[1, IMG, IMG, 2], [IMG, 3, PAD, PAD]]);
    expect(batch.attentionMask!.arraySync()).toEqual([[1, 1, 1, 1], [1, 1, 0, 0]]);
    expect(batch.labels!.arraySync()).toEqual([[I, I, I, 2], [I, 3, I, I]]);
    expect(batch.systemMask).toBeNull();
    expect(batch.images!.shape).toEqual([3, 4, 4, 3]);
    expect(Array.from(tf.mean(batch.images!, [1, 2, 3]).dataSync())).toEqual([0.25, 0.5, 0.75]);
    disposeBatch(batch);
    expect(() => collate([{ inputIds: [IMG], images: [] }], { padId: PAD, imageTokenId: IMG }))
      .toThrow(/samples\[0\] has 1 image placeholders but 0 images/);
    tf.dispose([a, b, c]);
  });
});
