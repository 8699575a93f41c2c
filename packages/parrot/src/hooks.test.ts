import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ParrotMoE } from './parrot-moe.js';
import { parrotHooks } from './hooks.js';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { randomBatch, randomWeights, weightsToStateDict } from './testing/fixtures.js';

const D = 16;
const I = 24;
const E = 3;
const N = 5;

function makeMoE(): ParrotMoE {
  const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E });
  const dict = weightsToStateDict(randomWeights(41, D, I, E, 2));
  moe.loadStateDict(dict);
  tf.dispose([...dict.values()]);
  return moe;
}

describe('parrotHooks (host transformVisual)', () => {
  it('routes each image with the prompt text of its own sample', () => {
    const moe = makeMoE();
    // 2 samples, 3 images: image 0 → sample 0, images 1 and 2 → sample 1
    const texts = randomBatch(3, N, D, [[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]]);
    const images = randomBatch(4, N, D, [[1], [1], [1]]);
    const textEmbeddings = tf.tensor3d(texts.paddedText);
    const promptTextMask = tf.tensor2d(texts.mask);
    const visual = tf.tensor3d(images.visual);
    const imageToSample = [0, 1, 1];
    const seen: number[][][] = [];
    const hooks = parrotHooks(moe, { onForward: (o) => seen.push(o.routingWeights.arraySync() as number[][]) });
    expect(hooks.namedModules()).toEqual([['model.moe_model', moe]]);
    expect(hooks.requiresFullSequence).toBe(false);
    const out = hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample, visionSelectFeature: 'cls_patch' });
    expect(out.shape).toEqual([3, N, D]);
    imageToSample.forEach((s, i) => {
      const single = moe.forward({ visual: tf.tensor3d([images.visual[i]]), text: tf.tensor3d([texts.texts[s]]) });
      expectClose(tf.slice(out, [i, 0, 0], [1, N, D]), single.output, { rtol: 1e-4, atol: 1e-6, label: `image ${i}` });
      expectClose(seen[0][i], single.routingWeights, { rtol: 1e-4, atol: 1e-6, label: `routing ${i}` });
      tf.dispose([single.output, single.routingWeights, single.textAttention]);
    });
    expectNoLeaks(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample, visionSelectFeature: 'cls_patch' }));
    expect(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0, 1], visionSelectFeature: 'cls_patch' })).toThrow(/imageToSample must have 3 entries/);
    expect(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0, 2, 1], visionSelectFeature: 'cls_patch' })).toThrow(/sample indices in \[0, 2\), got 2/);
    tf.dispose([out, visual, textEmbeddings, promptTextMask]);
    moe.dispose();
  });

  it('gradients reach the text embeddings and visual tokens through the hook (every backend)', () => {
    const moe = makeMoE();
    const texts = randomBatch(3, N, D, [[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]]);
    const images = randomBatch(4, N, D, [[1], [1], [1]]);
    const textEmbeddings = tf.tensor3d(texts.paddedText);
    const promptTextMask = tf.tensor2d(texts.mask);
    const visual = tf.tensor3d(images.visual);
    const hooks = parrotHooks(moe);
    tf.tidy(() => {
    const [dVisual, dText] = tf.grads((v: tf.Tensor, t: tf.Tensor) =>
      tf.sum(tf.square(hooks.transformVisual({ visual: v as tf.Tensor3D, textEmbeddings: t as tf.Tensor3D, promptTextMask, imageToSample: [0, 1, 1], visionSelectFeature: 'cls_patch' }))))([visual, textEmbeddings]);
    // the same through direct per-sample calls: image 0 with sample 0, images 1-2 (a batch of 2) with sample 1
    const [dVisual0, dText0] = tf.grads((v: tf.Tensor, t: tf.Tensor) =>
      tf.sum(tf.square(moe.forward({ visual: v as tf.Tensor3D, text: t as tf.Tensor3D, textMask: tf.slice(promptTextMask, [0, 0], [1, 5]) as tf.Tensor2D }).output)))(
      [tf.slice(visual, [0, 0, 0], [1, N, D]), tf.slice(textEmbeddings, [0, 0, 0], [1, 5, D])]);
    const [dVisual1, dText1] = tf.grads((v: tf.Tensor, t: tf.Tensor) =>
      tf.sum(tf.square(moe.forward({ visual: v as tf.Tensor3D, text: tf.concat([t, t]) as tf.Tensor3D, textMask: tf.tile(tf.slice(promptTextMask, [1, 0], [1, 5]), [2, 1]) as tf.Tensor2D }).output)))(
      [tf.slice(visual, [1, 0, 0], [2, N, D]), tf.slice(textEmbeddings, [1, 0, 0], [1, 5, D])]);
    expectClose(dVisual, tf.concat([dVisual0, dVisual1]), { rtol: 1e-4, atol: 1e-6, label: 'd visual' });
    expectClose(dText, tf.concat([dText0, dText1]), { rtol: 1e-4, atol: 1e-6, label: 'd text' });
    expect(tf.max(tf.abs(dText)).dataSync()[0]).toBeGreaterThan(1e-4);
    });
    tf.dispose([textEmbeddings, promptTextMask, visual]);
    moe.dispose();
  });

  it("multiImage 'reference' zeroes a sample's later images (the reference's buffer bug); 'clean' does not", () => {
    const moe = makeMoE();
    const texts = randomBatch(3, N, D, [[1, 1, 1], [1, 1, 0]]);
    const images = randomBatch(4, N, D, [[1], [1], [1], [1]]);
    const args = { visual: tf.tensor3d(images.visual), textEmbeddings: tf.tensor3d(texts.paddedText), promptTextMask: tf.tensor2d(texts.mask), imageToSample: [0, 0, 1, 0], visionSelectFeature: 'cls_patch' as const };
    const clean = parrotHooks(moe).transformVisual(args);
    const reference = parrotHooks(moe, { multiImage: 'reference' }).transformVisual(args);
    const c = clean.arraySync() as number[][][];
    const r = reference.arraySync() as number[][][];
    expect(r[0]).toEqual(c[0]);
    expect(r[2]).toEqual(c[2]);
    for (const i of [1, 3]) {
      expect(r[i].flat().every((x) => x === 0)).toBe(true);
      expect(c[i].flat().some((x) => x !== 0)).toBe(true);
    }
    expect(() => parrotHooks(moe, { multiImage: 'x' as 'clean' })).toThrow(/multiImage must be 'clean' or 'reference', got "x"/);
    tf.dispose([clean, reference, args.visual, args.textEmbeddings, args.promptTextMask]);
    moe.dispose();
  });

  it('in stage 1 the hook is the identity', () => {
    const moe = makeMoE().setStage(1);
    const hooks = parrotHooks(moe);
    const visual = tf.tensor3d(randomBatch(5, N, D, [[1]]).visual);
    const textEmbeddings = tf.ones([1, 2, D]) as tf.Tensor3D;
    const promptTextMask = tf.ones([1, 2]) as tf.Tensor2D;
    const out = hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0], visionSelectFeature: 'cls_patch' });
    expect(out.arraySync()).toEqual(visual.arraySync());
    tf.dispose([out, visual, textEmbeddings, promptTextMask]);
    moe.dispose();
  });

  it("refuses a host whose vision tower dropped CLS (visionSelectFeature 'patch'), in both stages, before any work", () => {
    const moe = makeMoE();
    const hooks = parrotHooks(moe);
    const visual = tf.tensor3d(randomBatch(5, N, D, [[1]]).visual);
    const textEmbeddings = tf.ones([1, 2, D]) as tf.Tensor3D;
    const promptTextMask = tf.ones([1, 2]) as tf.Tensor2D;
    const message = /visionSelectFeature \(the vision config's selectFeature\) must be 'cls_patch', got "patch"/;
    for (const stage of [2, 1] as const) {
      moe.setStage(stage);
      const count = tf.memory().numTensors;
      expect(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0], visionSelectFeature: 'patch' })).toThrow(message);
      expect(tf.memory().numTensors).toBe(count);
    }
    // a host that does not say is refused too
    const unsaid = { visual, textEmbeddings, promptTextMask, imageToSample: [0] } as unknown as Parameters<typeof hooks.transformVisual>[0];
    expect(() => hooks.transformVisual(unsaid)).toThrow(/must be 'cls_patch', got undefined/);
    tf.dispose([visual, textEmbeddings, promptTextMask]);
    moe.dispose();
  });
});
