/**
 * tfjs-layers serialisation: the Q-Former modules (`call` works on tensors) round-trip `model.save` /
 * `tf.loadLayersModel`; a VPGC (built around a runtime QFormerVPG, run through host hooks) is not a
 * layer, and saving a model containing one fails naming the supported API.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { expectClose, randomizeLayersModelWeights, reloadLayersModel, saveLayersModelInMemory } from '@mllm/core/testing';
import { QFormer, QFormerAttention, QFormerLayer, QFormerVPG, VPGC, qformerConfig } from './index.js';
import { makeVpg } from './test-support/fixture.js';

const SMALL = qformerConfig({ hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 12, encoderWidth: 6, crossAttentionFreq: 2 });

describe('Q-Former modules and tfjs-layers model.save / loadLayersModel', () => {
  it('round-trip QFormerVPG, QFormer, QFormerLayer and QFormerAttention with the same outputs', async () => {
    setSeed(8);
    const hidden = tf.input({ shape: [3, 8] });
    const image = tf.input({ shape: [4, 6] });
    const vpg = new QFormerVPG({ qformer: SMALL, numQueryTokens: 3, llmHiddenSize: 5 });
    const qformer = new QFormer({ config: SMALL });
    const layer = new QFormerLayer({ config: SMALL, layerIndex: 0 });
    const attention = new QFormerAttention({ hiddenSize: 8, numHeads: 2, keyWidth: 6, layerNormEps: 1e-12, attentionDropout: 0, hiddenDropout: 0 });
    const outputs = [
      vpg.apply(image),
      qformer.apply([hidden, image]),
      layer.apply([hidden, image]),
      attention.apply([hidden, image]),
    ] as tf.SymbolicTensor[];
    const model = tf.model({ inputs: [hidden, image], outputs });
    // Random weights everywhere (the query tokens and biases too), so a skipped load would show.
    randomizeLayersModelWeights(model, 40);
    const feed = [tf.randomNormal([2, 3, 8], 0, 1, 'float32', 1), tf.randomNormal([2, 4, 6], 0, 1, 'float32', 2)];
    const expected = model.predict(feed) as tf.Tensor[];

    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe([vpg, qformer, layer, attention].reduce((n, m) => n + m.weights.length, 0));
    expect(names).toContain(`${vpg.name}.query_tokens`);
    const actual = loaded.predict(feed) as tf.Tensor[];
    actual.forEach((t, i) => expectClose(t, expected[i], { atol: 0, rtol: 0 }));
    tf.dispose([...feed, ...expected, ...actual]);
    model.dispose();
    loaded.dispose();
  });

  it('a VPGC is not a layer: call and model.save fail naming addResidual, attachVPGC and saveAdapter', async () => {
    const vpgc = new VPGC({ vpg: makeVpg(), updateLayer: 1 });
    const hidden = tf.input({ shape: [3, vpgc.llmHiddenSize] });
    const model = tf.model({ inputs: hidden, outputs: vpgc.apply(hidden) as tf.SymbolicTensor });
    const message = /VPGC is not a tfjs-layers layer: use addResidual\(inputs\) or attach it to a host with attachVPGC .*; save with saveAdapter/;
    const x = tf.zeros([1, 3, vpgc.llmHiddenSize]);
    expect(() => model.predict(x)).toThrowError(message);
    await expect(saveLayersModelInMemory(model)).rejects.toThrowError(message);
    expect(tf.serialization.SerializationMap.getMap().classNameMap['mllm>VPGC']).toBeUndefined();
    x.dispose();
    model.dispose();
  });
});
