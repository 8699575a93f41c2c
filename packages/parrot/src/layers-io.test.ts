/**
 * tfjs-layers serialisation: a ParrotMoE (`call([visual, text, textMask?])`) round-trips `model.save` /
 * `tf.loadLayersModel` with its config and the same outputs.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { expectClose, randomizeLayersModelWeights, reloadLayersModel } from '@mllm/core/testing';
import { ParrotMoE } from './parrot-moe.js';

describe('ParrotMoE and tfjs-layers model.save / loadLayersModel', () => {
  it('round-trips a functional model with a text mask input, config and outputs unchanged', async () => {
    setSeed(6);
    const visual = tf.input({ shape: [4, 8] });
    const text = tf.input({ shape: [3, 8] });
    const textMask = tf.input({ shape: [3] });
    const moe = new ParrotMoE({ hiddenSize: 8, intermediateSize: 12, numExperts: 3, topK: 2, moeWeight: 0.7 });
    const model = tf.model({ inputs: [visual, text, textMask], outputs: moe.apply([visual, text, textMask]) as tf.SymbolicTensor });
    randomizeLayersModelWeights(model, 60);
    const feed = [tf.randomNormal([2, 4, 8], 0, 1, 'float32', 1), tf.randomNormal([2, 3, 8], 0, 1, 'float32', 2), tf.tensor2d([[1, 1, 0], [1, 1, 1]])];
    const expected = model.predict(feed) as tf.Tensor;

    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(moe.weights.length);
    expect(names).toContain(`${moe.name}.experts.2.down_proj.weight`);
    const reloaded = loaded.layers.find((l) => l.name === moe.name) as ParrotMoE;
    expect(reloaded.getConfig()).toEqual(moe.getConfig());
    const actual = loaded.predict(feed) as tf.Tensor;
    expectClose(actual, expected, { atol: 0, rtol: 0 });
    tf.dispose([...feed, expected, actual]);
    model.dispose();
    loaded.dispose();
  });
});
