import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ParrotMoE } from './parrot-moe.js';
import { parrotHooks } from './hooks.js';
import { expectClose, expectNoLeaks, randomBatch, randomWeights, weightsToStateDict } from './testing/fixtures.js';

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
    expect(hooks.modules()).toEqual([moe]);
    expect(hooks.requiresFullSequence).toBe(false);
    const out = hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample });
    expect(out.shape).toEqual([3, N, D]);
    imageToSample.forEach((s, i) => {
      const single = moe.forward({ visual: tf.tensor3d([images.visual[i]]), text: tf.tensor3d([texts.texts[s]]) });
      expectClose(tf.slice(out, [i, 0, 0], [1, N, D]), single.output, { rtol: 1e-4, atol: 1e-6, label: `image ${i}` });
      expectClose(seen[0][i], single.routingWeights, { rtol: 1e-4, atol: 1e-6, label: `routing ${i}` });
      tf.dispose([single.output, single.routingWeights, single.textAttention]);
    });
    expectNoLeaks(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample }));
    expect(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0, 1] })).toThrow(/imageToSample must have 3 entries/);
    expect(() => hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0, 2, 1] })).toThrow(/sample indices in \[0, 2\), got 2/);
    tf.dispose([out, visual, textEmbeddings, promptTextMask]);
    moe.dispose();
  });

  it('in stage 1 the hook is the identity', () => {
    const moe = makeMoE().setStage(1);
    const hooks = parrotHooks(moe);
    const visual = tf.tensor3d(randomBatch(5, N, D, [[1]]).visual);
    const textEmbeddings = tf.ones([1, 2, D]) as tf.Tensor3D;
    const promptTextMask = tf.ones([1, 2]) as tf.Tensor2D;
    const out = hooks.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: [0] });
    expect(out.arraySync()).toEqual(visual.arraySync());
    tf.dispose([out, visual, textEmbeddings, promptTextMask]);
    moe.dispose();
  });
});
