/**
 * tfjs-layers serialisation: the Wings modules whose `call` works (router, low-rank projection, LoRRA)
 * round-trip `model.save` / `tf.loadLayersModel`; a WingsLayer (it needs the host's context) is not a
 * layer, and saving a model containing one fails naming the supported API.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { expectClose, randomizeLayersModelWeights, reloadLayersModel, saveLayersModelInMemory } from '@mllm/core/testing';
import { LoRRA } from './lorra.js';
import { LowRankProjection } from './low-rank-projection.js';
import { WingsRouter } from './router.js';
import { WingsLayer } from './wings-layer.js';

describe('Wings modules and tfjs-layers model.save / loadLayersModel', () => {
  it('round-trip a functional model of LoRRA, LowRankProjection and WingsRouter with the same outputs', async () => {
    setSeed(3);
    const query = tf.input({ shape: [3, 8] });
    const source = tf.input({ shape: [4, 8] });
    const queryPositions = tf.input({ shape: [3] });
    const keyPositions = tf.input({ shape: [4] });
    const probs = tf.input({ shape: [2, 3, 5] });
    const learner = new LoRRA({ hiddenSize: 8, numHeads: 2, rank: 2, ropeTheta: 10000 });
    const projection = new LowRankProjection({ inFeatures: 8, outFeatures: 6, rank: 2 });
    const router = new WingsRouter({ maxLength: 5 });
    const attended = learner.apply([query, source, queryPositions, keyPositions]) as tf.SymbolicTensor;
    const [visual, textual] = router.apply(probs) as tf.SymbolicTensor[];
    const model = tf.model({ inputs: [query, source, queryPositions, keyPositions, probs], outputs: [projection.apply(attended) as tf.SymbolicTensor, visual, textual] });
    randomizeLayersModelWeights(model, 20); // B = 0 at init would hide a skipped load
    const feed = [
      tf.randomNormal([2, 3, 8], 0, 1, 'float32', 1),
      tf.randomNormal([2, 4, 8], 0, 1, 'float32', 2),
      tf.tensor2d([[4, 5, 6], [1, 2, 3]]),
      tf.tensor2d([[0, 1, 2, 3], [0, 1, 2, 3]]),
      tf.softmax(tf.randomNormal([2, 2, 3, 5], 0, 1, 'float32', 3)),
    ];
    const expected = model.predict(feed) as tf.Tensor[];

    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(learner.weights.length + projection.weights.length + router.weights.length);
    expect(names).toContain(`${projection.name}.0.weight`);
    expect(names).toContain(`${projection.name}.1.weight`);
    const actual = loaded.predict(feed) as tf.Tensor[];
    expect(actual.length).toBe(3);
    actual.forEach((t, i) => expectClose(t, expected[i], { atol: 0, rtol: 0 }));
    tf.dispose([...feed, ...expected, ...actual]);
    model.dispose();
    loaded.dispose();
  });

  it('a WingsLayer is not a layer: call and model.save fail naming forward and saveAdapter', async () => {
    const hidden = tf.input({ shape: [3, 8] });
    const layer = new WingsLayer({ hiddenSize: 8, numHeads: 2, rank: 2, ropeTheta: 10000, stage: 1, routerMaxLength: 5 });
    const model = tf.model({ inputs: hidden, outputs: layer.apply(hidden) as tf.SymbolicTensor });
    const message = /WingsLayer is not a tfjs-layers layer: use forward\(\{ residual, positions, attentionProbs, hasImage, visual, textual \}\) or attach Wings to a host; save with saveAdapter/;
    const x = tf.zeros([1, 3, 8]);
    expect(() => model.predict(x)).toThrowError(message);
    await expect(saveLayersModelInMemory(model)).rejects.toThrowError(message);
    expect(tf.serialization.SerializationMap.getMap().classNameMap['mllm>WingsLayer']).toBeUndefined();
    x.dispose();
    model.dispose();
  });
});
