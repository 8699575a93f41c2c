/** Parrot on the host MLLM through `transformVisual` (tiny dims). */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { type DecoderHooks, loadStateDict, stateDict } from '@mllm/core';
import { IGNORE_INDEX } from '@mllm/models';
import { parrotHooks } from './hooks.js';
import { parrotMoE64, type Matrix } from './testing/float64-moe.js';
import { expectClose } from '@mllm/core/testing';
import { maxAbs, randomWeights, readWeights, weightsToStateDict } from './testing/fixtures.js';
import { disposeBatch, logitsOf, tinyTokenBatch, tinyTokenRows } from '@mllm/models/testing';
import { FEATURES, H, tinyHost, tinyMoE } from './testing/host-fixtures.js';

describe('Parrot on the host MLLM', () => {
  it("each image's spliced tokens = the float64 MoE of its projected tokens and its sample's prompt-token embeddings", () => {
    const model = tinyHost();
    const moe = tinyMoE();
    const captured: { input?: tf.Tensor3D; output?: tf.Tensor3D } = {};
    const before: DecoderHooks = { transformVisual: ({ visual }) => { captured.input = tf.keep(visual.clone()); return visual; } };
    const after: DecoderHooks = { transformVisual: ({ visual }) => { captured.output = tf.keep(visual.clone()); return visual; } };
    const handles = [model.addHooks(before), model.addHooks(parrotHooks(moe)), model.addHooks(after)];
    const batch = tinyTokenBatch(model, FEATURES);
    const count = tf.memory().numTensors;
    logitsOf(model, batch);
    expect(tf.memory().numTensors).toBe(count + 2); // just the two captured clones

    const table = (() => {
      const dict = stateDict(model);
      const values = dict.get('model.embed_tokens.weight')!.arraySync() as Matrix;
      tf.dispose([...dict.values()]);
      return values;
    })();
    const { ids, labels } = tinyTokenRows(model);
    const weights = readWeights(moe);
    const projected = captured.input!.arraySync() as Matrix[];
    const expected = projected.map((visual, image) => {
      // image i belongs to sample i here; the reference's MoE text: real, non-image tokens whose label is ignored
      const text = ids[image]
        .filter((id, t) => id !== model.tokenizer.imageId && id !== model.tokenizer.padId && labels[image][t] === IGNORE_INDEX)
        .map((id) => table[id]);
      expect(text.length).toBe(4);
      return parrotMoE64(visual, text, weights, { alpha: 0.1, useMoe: true, useResidual: true, topK: null }).output;
    });
    expectClose(captured.output!, expected, { rtol: 1e-4, atol: 1e-5 * maxAbs(expected), label: 'spliced visual tokens' });
    tf.dispose([captured.input!, captured.output!]);
    handles.forEach((h) => h.remove());
    disposeBatch(batch);
    moe.dispose();
    model.dispose();
  });

  it("a host whose vision tower drops CLS (selectFeature 'patch', the default) is refused on forward, loss and generate", () => {
    const model = tinyHost(1, 'patch');
    const moe = tinyMoE();
    const handle = model.addHooks(parrotHooks(moe));
    const message = /Parrot routes each image with its projected CLS token.*must be 'cls_patch', got "patch"/;
    const batch = tinyTokenBatch(model, FEATURES.map((f) => f.slice(1))); // 4 patch rows per image, CLS dropped
    const images = tf.randomUniform([1, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const count = tf.memory().numTensors;
    expect(() => model.forward(batch)).toThrow(message);
    expect(() => model.loss(batch)).toThrow(message);
    expect(() => model.generate('<image>\nWhat is this?', images, { maxNewTokens: 1 })).toThrow(message);
    expect(tf.memory().numTensors).toBe(count);
    handle.remove();
    tf.dispose(images);
    disposeBatch(batch);
    moe.dispose();
    model.dispose();
  });

  it('stage 1 leaves the host logits exactly unchanged; stage 2 changes them', () => {
    const model = tinyHost();
    const batch = tinyTokenBatch(model, FEATURES);
    const base = logitsOf(model, batch);
    const moe = tinyMoE().setStage(1);
    const handle = model.addHooks(parrotHooks(moe));
    expect(logitsOf(model, batch)).toEqual(base);
    moe.setStage(2);
    expect(maxAbs(logitsOf(model, batch).map((s, b) => s.map((r, t) => r.map((x, v) => x - base[b][t][v]))))).toBeGreaterThan(1e-4);
    handle.remove();
    disposeBatch(batch);
    moe.dispose();
    model.dispose();
  });

  it('the MoE lives at model.moe_model.* in the host state dict and trains with the host loss', () => {
    const model = tinyHost();
    const moe = tinyMoE();
    const handle = model.addHooks(parrotHooks(moe));
    const dict = stateDict(model);
    expect([...dict.keys()].filter((k) => k.startsWith('model.moe_model.')).sort()).toEqual(
      [...moe.namedParameters('model.moe_model.').map(([k]) => k)].sort(),
    );
    // a full checkpoint (host + MoE under the reference names) loads in one call
    const fresh = weightsToStateDict(randomWeights(99, H, 24, 3), 'model.moe_model.');
    for (const [k, v] of fresh) { dict.get(k)!.dispose(); dict.set(k, v); }
    loadStateDict(model, dict);
    expect(readWeights(moe)).toEqual(randomWeights(99, H, 24, 3));
    tf.dispose([...dict.values()]);

    const batch = tinyTokenBatch(model, FEATURES);
    const variables = moe.trainableVariables();
    expect(model.trainableVariables().length).toBeGreaterThan(variables.length);
    const { value, grads } = tf.variableGrads(() => model.loss(batch), variables);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    for (const v of variables) expect(tf.max(tf.abs(grads[v.name])).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([value, ...Object.values(grads)]);
    moe.setStage(1);
    expect(model.trainableVariables().some((v) => variables.includes(v))).toBe(false);
    handle.remove();
    expect(model.namedParameters().some(([k]) => k.startsWith('model.moe_model.'))).toBe(false);
    disposeBatch(batch);
    moe.dispose();
    model.dispose();
  });

  it('generation with the KV cache equals full re-runs (the MoE sees only the prompt), without leaks', () => {
    const model = tinyHost();
    const moe = tinyMoE();
    const handle = model.addHooks(parrotHooks(moe));
    const images = tf.randomUniform([1, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const prompt = '<image>\nWhat is this?';
    const count = tf.memory().numTensors;
    const cached = model.generate(prompt, images, { maxNewTokens: 2, useCache: true });
    const full = model.generate(prompt, images, { maxNewTokens: 2, useCache: false });
    expect(tf.memory().numTensors).toBe(count);
    expect(cached.tokenIds).toEqual(full.tokenIds);
    expect(cached.tokenIds[0].length).toBeGreaterThan(0);
    handle.remove();
    images.dispose();
    moe.dispose();
    model.dispose();
  });
});
