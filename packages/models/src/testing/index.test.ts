import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { MlpGeluProjector, setSeed, stateDict, disposeStateDict } from '@mllm/core';
import { expectNoLeaks } from '@mllm/core/testing';
import { HostLM, HostMLLM, IGNORE_INDEX } from '../index.js';
import { disposeBatch, logitsOf, tinyChatBatch, tinyHost, tinyImages, tinyLM, tinyTextConfig, tinyTokenBatch, tinyTokenRows, tokenBatch, TINY_VOCAB } from './index.js';

/** Flat values of every tensor of a model's state dict, by name. */
function weights(model: HostLM): Map<string, number[]> {
  const dict = stateDict(model);
  const values = new Map([...dict].map(([name, t]) => [name, Array.from(t.dataSync())]));
  disposeStateDict(dict);
  return values;
}

describe('@mllm/models/testing', () => {
  it('tinyHost: the same seed and overrides give the same weights, another seed other weights', () => {
    const a = tinyHost(3, { numLayers: 1 }, { selectFeature: 'cls_patch' });
    const b = tinyHost(3, { numLayers: 1 }, { selectFeature: 'cls_patch' });
    const c = tinyHost(4, { numLayers: 1 }, { selectFeature: 'cls_patch' });
    expect(a).toBeInstanceOf(HostMLLM);
    expect(a.textConfig).toMatchObject(tinyTextConfig({ numLayers: 1 }));
    expect(a.visionTower.visionConfig.selectFeature).toBe('cls_patch');
    const [wa, wb, wc] = [weights(a), weights(b), weights(c)];
    expect([...wa.keys()]).toEqual([...wb.keys()]);
    expect(wa).toEqual(wb);
    expect(wa.get('lm_head.weight')).not.toEqual(wc.get('lm_head.weight'));
    // equals a host built by hand after setSeed with the documented config
    setSeed(3);
    const byHand = new HostMLLM({
      config: {
        text: { vocabSize: 262, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 256 },
        vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, selectFeature: 'cls_patch' },
      },
    });
    expect(weights(byHand)).toEqual(wa);
    for (const m of [a, b, c, byHand]) m.dispose();
  });

  it('tinyHost: the projector factory runs after the seed, before the host layers', () => {
    let built: MlpGeluProjector | undefined;
    const model = tinyHost(5, {}, {}, { projector: () => (built = new MlpGeluProjector({ inFeatures: 12, outFeatures: 16 })) });
    setSeed(5);
    const expected = new MlpGeluProjector({ inFeatures: 12, outFeatures: 16 });
    expect(model.projector).toBe(built);
    const [got, want] = [stateDict(built!), stateDict(expected)];
    for (const [name, t] of want) expect(Array.from(got.get(name)!.dataSync()), name).toEqual(Array.from(t.dataSync()));
    disposeStateDict(got);
    disposeStateDict(want);
    expected.dispose();
    model.dispose();
  });

  it('tinyLM: a seeded HostLM with the tiny text config', () => {
    const lm = tinyLM(2, { numLayers: 1 });
    expect(lm).toBeInstanceOf(HostLM);
    expect(lm.textConfig).toMatchObject(tinyTextConfig({ numLayers: 1 }));
    const again = tinyLM(2, { numLayers: 1 });
    expect(weights(lm)).toEqual(weights(again));
    lm.dispose();
    again.dispose();
  });

  it('tinyImages: deterministic [n, 8, 8, 3] pixels in [0, 1]', () => {
    const [a, b] = [tinyImages(2), tinyImages(2)];
    expect(a.shape).toEqual([2, 8, 8, 3]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Math.min(...a.dataSync())).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a.dataSync())).toBeLessThanOrEqual(1);
    tf.dispose([a, b]);
  });

  it('tinyChatBatch: two samples with 2 + 1 images, supervised answers only; disposeBatch frees it all', () => {
    const model = tinyHost(1);
    const before = tf.memory().numTensors;
    const batch = tinyChatBatch(model);
    const ids = batch.inputIds.arraySync();
    const imageCounts = ids.map((row) => row.filter((id) => id === model.tokenizer.imageId).length);
    expect(imageCounts).toEqual([2, 1]);
    expect(batch.images!.shape).toEqual([3, 8, 8, 3]);
    const labels = batch.labels!.arraySync();
    expect(labels.every((row) => row.some((l) => l !== IGNORE_INDEX))).toBe(true);
    expect(labels.every((row) => row[0] === IGNORE_INDEX)).toBe(true);
    disposeBatch(batch);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('tinyTokenBatch / logitsOf: one image slot per sample, right padding masked, logits [2, L, V] without leaks', () => {
    const model = tinyHost(1);
    const { ids, labels } = tinyTokenRows(model);
    const features = tf.randomUniform([2, 4, 12], -1, 1, 'float32', 9) as tf.Tensor3D;
    const batch = tinyTokenBatch(model, features);
    expect(batch.imageFeatures).not.toBe(features); // cloned: the caller keeps its own tensor
    expect(batch.inputIds.arraySync()).toEqual(ids);
    expect(batch.labels!.arraySync()).toEqual(labels);
    expect(batch.attentionMask!.arraySync()).toEqual([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]);
    let logits: number[][][] = [];
    expectNoLeaks(() => {
      logits = logitsOf(model, batch);
    });
    // each image slot expands to 4 visual tokens: 7 − 1 + 4 positions
    expect([logits.length, logits[0]!.length, logits[0]![0]!.length]).toEqual([2, 10, TINY_VOCAB]);
    const nested = tinyTokenBatch(model, features.arraySync());
    expect(logitsOf(model, nested)).toEqual(logits);
    tf.dispose(features);
    disposeBatch(batch);
    disposeBatch(nested);
    model.dispose();
  });

  it('tokenBatch: text only (no features, no labels), the mask follows the pad id', () => {
    const model = tinyHost(1);
    const pad = model.tokenizer.padId;
    const batch = tokenBatch(model, [[65, 66, 67], [68, pad, pad]]);
    expect(batch.imageFeatures).toBeNull();
    expect(batch.labels).toBeUndefined();
    expect(batch.attentionMask!.arraySync()).toEqual([[1, 1, 1], [1, 0, 0]]);
    const logits = logitsOf(model, batch);
    expect([logits.length, logits[0]!.length]).toEqual([2, 3]);
    disposeBatch(batch);
    model.dispose();
  });
});
