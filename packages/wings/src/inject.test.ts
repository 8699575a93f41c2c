import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, loadSafetensors, loadStateDict, saveSafetensors, StateDictError } from '@mllm/core';
import type { HostMLLM } from '@mllm/models';
import { logitsOf, tinyHost as sharedTinyHost, tokenBatch } from '@mllm/models/testing';
import { injectWings, resolveWingsConfig, type WingsConfig } from './inject.js';
import { CLEAN_COMPAT, REFERENCE_COMPAT } from './wings-layer.js';
import { RELATIVE_TOLERANCE, lorra64, maxRelativeError, randomAdapterDict, randomLearnerWeights, randomMatrix, router64 } from './reference-math.testutil.js';
import type { WingsHooks } from './inject.js';

const H = 16;
const R = 3;
const MAX = 32;

/** The shared tiny host with Wings' 64-position text config. */
const tinyHost = (seed = 1): HostMLLM => sharedTinyHost(seed, { hiddenSize: H, maxLength: 64 });

/** Sample 0: two text tokens, an image (4 tokens), three text tokens; sample 1: text only, right-padded. */
function batchIds(model: HostMLLM, last = 122): number[][] {
  const pad = model.tokenizer.padId;
  return [
    [72, 105, model.tokenizer.imageId, 120, 121, last],
    [65, 66, 67, 68, pad, pad],
  ];
}

function logits(model: HostMLLM, ids: number[][], withImage = true): number[][][] {
  return tf.tidy(() => logitsOf(model, tokenBatch(model, ids, withImage ? [randomMatrix(5, 4, 12)] : null)));
}

const CONFIG: Record<1 | 2, WingsConfig> = {
  1: { stage: 1, rank: R, routerMaxLength: MAX },
  2: { stage: 2, rank: R, routerMaxLength: MAX },
};

describe('injectWings on the host MLLM', () => {
  it('a Wings model at init equals its base model exactly (stage 1 and 2), without leaks', () => {
    for (const stage of [1, 2] as const) {
      const model = tinyHost();
      const ids = batchIds(model);
      const base = logits(model, ids);
      const injection = injectWings(model, CONFIG[stage]);
      const before = tf.memory().numTensors;
      const wings = logits(model, ids);
      expect(tf.memory().numTensors).toBe(before);
      expect(wings).toEqual(base);
      injection.remove();
      injection.adapter.dispose();
      model.dispose();
    }
  });

  it('registers reference names, freezes the base by structure and trains only the stage’s modules', () => {
    const model = tinyHost();
    const baseCount = model.namedParameters().length;
    const one = injectWings(model, { ...CONFIG[1], layers: /model\.layers\.1$/ });
    expect(one.config.layers).toEqual([1]);
    const names = model.namedParameters().map(([n]) => n);
    expect(names.length).toBe(baseCount + 16);
    expect(names).toContain('model.layers.1.attn_pool.q_proj.0.weight');
    expect(names).toContain('model.layers.1.attn_t_pool.o_proj.1.weight');
    expect(names.some((n) => n.startsWith('model.layers.0.attn_pool'))).toBe(false);
    const trainable = model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
    expect(trainable.length).toBe(8);
    expect(trainable.every((n) => n.startsWith('model.layers.1.attn_pool.'))).toBe(true);
    expect(model.requiresFullSequence).toBe(false);
    one.remove();
    expect(model.namedParameters().length).toBe(baseCount);
    one.adapter.dispose();

    const two = injectWings(model, CONFIG[2]);
    const trainable2 = model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
    expect(trainable2.length).toBe(2 * 18);
    expect(trainable2).toContain('model.layers.0.reweight_module.linear.weight');
    expect(model.requiresFullSequence).toBe(true);
    expect(() => injectWings(model, { ...CONFIG[2], hiddenSize: 8 })).toThrowError(/hiddenSize 8 differs from the host model's 16/);
    two.remove();
    two.adapter.dispose();
    model.dispose();
  });

  it('resolves layer selections and rejects bad configs with clear errors', () => {
    const host = { hiddenSize: H, numHeads: 2, numLayers: 4, ropeTheta: 1e6 };
    expect(resolveWingsConfig({ stage: 1, rank: 2 }, host).layers).toEqual([0, 1, 2, 3]);
    expect(resolveWingsConfig({ stage: 1, rank: 2, layers: [3, 1, 3] }, host).layers).toEqual([1, 3]);
    expect(resolveWingsConfig({ stage: 1, rank: 2, layers: /\.(0|2)$/ }, host).layers).toEqual([0, 2]);
    expect(resolveWingsConfig({ stage: 2, rank: 2 }, host).routerMaxLength).toBe(4096);
    expect(() => resolveWingsConfig({ stage: 3 as 1, rank: 2 }, host)).toThrowError(/stage must be 1 or 2, got 3/);
    expect(() => resolveWingsConfig({ stage: 1, rank: 2, layers: [4] }, host)).toThrowError(/layers entries must be integers in \[0, 4\), got 4/);
    expect(() => resolveWingsConfig({ stage: 1, rank: 2, layers: /nothing/ }, host)).toThrowError(/selects no decoder layer/);
    expect(() => resolveWingsConfig({ stage: 2, rank: 2, referenceCompat: { misalignedTextMask: true } }, host)).toThrowError(/needs systemPromptLength/);
    expect(resolveWingsConfig({ stage: 2, rank: 2 }, host).referenceCompat).toEqual(CLEAN_COMPAT);
    expect(resolveWingsConfig({ stage: 2, rank: 2, referenceCompat: 'clean' }, host).referenceCompat).toEqual(CLEAN_COMPAT);
    expect(resolveWingsConfig({ stage: 2, rank: 2, referenceCompat: 'reference', systemPromptLength: 14 }, host).referenceCompat).toEqual(REFERENCE_COMPAT);
    expect(() => resolveWingsConfig({ stage: 2, rank: 2, referenceCompat: 'reference' }, host)).toThrowError(/needs systemPromptLength/);
    expect(() => resolveWingsConfig({ stage: 2, rank: 2, referenceCompat: 'exact' as never }, host)).toThrowError(
      /referenceCompat must be 'reference', 'clean' or an object of switches, got "exact"/,
    );
    expect(() => resolveWingsConfig({ stage: 1, rank: 2 })).toThrowError(/hiddenSize is required/);
  });

  it('stage 2 with trained weights: clean mask is causal end to end; misalignedTextMask leaks the future', () => {
    const model = tinyHost();
    const injection = injectWings(model, CONFIG[2]);
    const dict = randomAdapterDict([0, 1], 2, 3);
    loadStateDict(model, dict, { strict: false });
    disposeStateDict(dict);
    const ids = batchIds(model);
    const changed = batchIds(model, 90);
    const clean = logits(model, ids);
    injection.remove();
    const base = logits(model, ids);
    expect(maxRelativeError(clean, base)).toBeGreaterThan(1e-3);
    const hooks = model.addHooks(injection.adapter.hooks());
    // The last token of sample 0 sits at spliced position 8; everything before is unchanged.
    const cleanChanged = logits(model, changed);
    for (let t = 0; t < 8; t++) expect(cleanChanged[0][t]).toEqual(clean[0][t]);
    hooks.remove();
    injection.adapter.dispose();

    const leaky = injectWings(model, { ...CONFIG[2], referenceCompat: { misalignedTextMask: true }, systemPromptLength: 1 });
    const dict2 = randomAdapterDict([0, 1], 2, 3);
    loadStateDict(model, dict2, { strict: false });
    disposeStateDict(dict2);
    const a = logits(model, ids);
    const b = logits(model, changed);
    // Image sample (image at [2, 6), L = 9) keys are [1, 2) ∪ [6, 9) = positions 1, 6, 7, 8: query 3 sees
    // key columns 0..3, the last being real position 8 (the changed token); the clean mask hides it.
    expect(maxRelativeError(b[0][3], a[0][3])).toBeGreaterThan(1e-5);
    expect(cleanChanged[0][3]).toEqual(clean[0][3]);
    leaky.remove();
    leaky.adapter.dispose();
    model.dispose();
  });

  it('stage 2 on the host: each layer\'s update matches float64 from the host\'s own context (right padding, positions, text mask, image spans)', () => {
    const model = tinyHost(4);
    const injection = injectWings(model, CONFIG[2]);
    const seed = 13;
    const dict = randomAdapterDict([0, 1], 2, seed);
    loadStateDict(model, dict, { strict: false });
    disposeStateDict(dict);
    // Record what the host hands the hook and what the hook returns.
    injection.remove();
    const hooks = injection.adapter.hooks();
    const calls: Array<Record<string, unknown>> = [];
    const recording: WingsHooks = {
      ...hooks,
      afterAttention: (index, args, ctx) => {
        const out = hooks.afterAttention(index, args, ctx)!;
        calls.push({
          index, residual: args.residual.arraySync(), probs: args.attentionProbs!.arraySync(), out: out.arraySync(),
          embeddings: ctx.inputEmbeddings.arraySync(), positions: ctx.positions.arraySync(), textMask: ctx.textMask.arraySync(),
          hasImage: ctx.hasImage.arraySync(), spans: ctx.imageSpans, tokens: ctx.visualTokens!.arraySync(),
        });
        return out;
      },
    };
    const handle = model.addHooks(recording);
    logits(model, batchIds(model));
    handle.remove();
    expect(calls.map((c) => c['index'])).toEqual([0, 1]);
    for (const call of calls) {
      const i = call['index'] as number;
      const residual = call['residual'] as number[][][];
      const positions = call['positions'] as number[][];
      const spans = call['spans'] as Array<Array<{ imageIndex: number; start: number; length: number }>>;
      const tokens = call['tokens'] as number[][][];
      const hasImage = call['hasImage'] as number[];
      // The host's convention: right padding, positions counting on through the padding, padding and image slots out of the text mask.
      expect(positions[1]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(call['textMask']).toEqual([[1, 1, 0, 0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0, 0]]);
      expect(spans).toEqual([[{ imageIndex: 0, start: 2, length: 4 }], []]);
      expect(hasImage).toEqual([1, 0]);
      const visualW = randomLearnerWeights(seed + i, H, R, 0.4);
      const textualW = randomLearnerWeights(seed + 50 + i, H, R, 0.4);
      const visual = residual.map((rows, b) =>
        spans[b].length === 0
          ? rows.map((row) => row.map(() => 0))
          : lorra64(visualW, 2, 10000, {
              query: [rows], source: [tokens[spans[b][0].imageIndex]], queryPositions: [positions[b]],
              keyPositions: [tokens[0].map((_, k) => spans[b][0].start + k)],
            })[0],
      );
      const textual = lorra64(textualW, 2, 10000, {
        query: residual, source: call['embeddings'] as number[][][], queryPositions: positions, keyPositions: positions,
        keyMask: call['textMask'] as number[][], causalByPosition: true,
      });
      const gates = router64(randomMatrix(seed + 90 + i, 2, MAX, 2), [0.1, -0.3], call['probs'] as number[][][][]);
      const expected = residual.map((rows, b) =>
        rows.map((row, t) => row.map((x, k) => x + gates[b][t][0] * visual[b][t][k] * hasImage[b] + gates[b][t][1] * textual[b][t][k])),
      );
      expect(maxRelativeError(call['out'], expected)).toBeLessThan(RELATIVE_TOLERANCE);
      expect(maxRelativeError(call['out'], residual)).toBeGreaterThan(1e-3);
    }
    injection.adapter.dispose();
    model.dispose();
  });

  it('stage 1 runs on cached decode steps: generation with and without KV cache agree', () => {
    const model = tinyHost(2);
    const injection = injectWings(model, CONFIG[1]);
    const dict = randomAdapterDict([0, 1], 1, 7);
    loadStateDict(model, dict, { strict: false });
    disposeStateDict(dict);
    const images = tf.randomUniform([1, 8, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const prompt = [72, 105, model.tokenizer.imageId, 120];
    const before = tf.memory().numTensors;
    const cached = model.generate([prompt], images, { maxNewTokens: 4, eosTokenIds: [] });
    const full = model.generate([prompt], images, { maxNewTokens: 4, eosTokenIds: [], useCache: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(cached.tokenIds).toEqual(full.tokenIds);
    injection.remove();
    const plain = model.generate([prompt], images, { maxNewTokens: 4, eosTokenIds: [] });
    expect(plain.tokenIds[0].length).toBe(4);
    images.dispose();
    injection.adapter.dispose();
    model.dispose();
  });

  it('text-only batches: stage 1 is a no-op, stage 2 runs the textual learner', () => {
    const model = tinyHost();
    const ids = [[65, 66, 67], [68, 69, 70]];
    const base = logits(model, ids, false);
    const one = injectWings(model, CONFIG[1]);
    const d1 = randomAdapterDict([0, 1], 1, 11);
    loadStateDict(model, d1, { strict: false });
    disposeStateDict(d1);
    expect(logits(model, ids, false)).toEqual(base);
    one.remove();
    one.adapter.dispose();
    const two = injectWings(model, CONFIG[2]);
    const d2 = randomAdapterDict([0, 1], 2, 11);
    loadStateDict(model, d2, { strict: false });
    disposeStateDict(d2);
    expect(maxRelativeError(logits(model, ids, false), base)).toBeGreaterThan(1e-4);
    two.remove();
    two.adapter.dispose();
    model.dispose();
  });
});

describe('WingsAdapter state dict round trip', () => {
  it('adapter.stateDict() -> safetensors -> a fresh host + adapter loadStateDict -> identical logits', () => {
    const source = tinyHost();
    const injection = injectWings(source, CONFIG[2]);
    const weights = randomAdapterDict([0, 1], 2, 7);
    injection.adapter.loadStateDict(weights);
    disposeStateDict(weights);
    const ids = batchIds(source);
    const expected = logits(source, ids);
    const dict = injection.adapter.stateDict();
    const bytes = saveSafetensors(dict);
    disposeStateDict(dict);
    const { tensors } = loadSafetensors(bytes);
    for (const input of [tensors, Object.fromEntries(tensors)]) {
      const target = tinyHost();
      const fresh = injectWings(target, CONFIG[2]);
      expect(logits(target, ids)).not.toEqual(expected);
      fresh.adapter.loadStateDict(input);
      expect(logits(target, ids)).toEqual(expected);
      fresh.remove();
      fresh.adapter.dispose();
      target.dispose();
    }
    // Under a prefix it asks for that prefix.
    const wrapped = new Map([...tensors].map(([k, v]) => [`base_model.${k}`, v] as [string, tf.Tensor]));
    const target = tinyHost();
    const fresh = injectWings(target, CONFIG[2]);
    expect(() => fresh.adapter.loadStateDict(wrapped)).toThrowError(StateDictError);
    expect(() => fresh.adapter.loadStateDict(wrapped)).toThrowError("with the prefix 'base_model.': pass { prefix: 'base_model.' }");
    fresh.remove();
    fresh.adapter.dispose();
    target.dispose();
    disposeStateDict(tensors);
    injection.remove();
    injection.adapter.dispose();
    source.dispose();
  });
});
