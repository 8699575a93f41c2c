import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, imageTablesFromSpans, loadSafetensors, saveSafetensors } from '@mllm/core';
import { WingsLayer, type ReferenceCompat } from './wings-layer.js';
import { buildReferenceTextualKeys, buildTextualKeys, buildVisualKeys, referenceTextKeyIndices, type WingsKeyContext } from './learner-keys.js';
import {
  learnerStateDict,
  lorra64,
  RELATIVE_TOLERANCE,
  ON_WEBGPU,
  maxRelativeError,
  randomArray,
  randomAttentionProbs,
  randomLearnerWeights,
  randomMatrix,
  router64,
  type LearnerWeights64,
} from './reference-math.testutil.js';

const H = 8;
const HEADS = 2;
const R = 3;
const THETA = 10000;
const L = 8;
const MAX = 10;
const SP = 1;

/** Plain-JS description of a two-sample batch: sample 0 has an image at [2, 5), sample 1 is text only with 2 padding tokens. */
interface Batch {
  embeddings: number[][][];
  visualTokens: number[][][] | null;
  spans: Array<Array<{ imageIndex: number; start: number; length: number }>>;
  attentionMask: number[][];
  textMask: number[][];
  hasImage: number[];
  residual: number[][][];
  probs: number[][][][];
}

function batch(seed: number, withImage = true): Batch {
  const emb = randomArray(seed, 2 * L * H);
  const embeddings = [0, 1].map((b) => Array.from({ length: L }, (_, t) => emb.slice((b * L + t) * H, (b * L + t + 1) * H)));
  const visualTokens = withImage ? [randomMatrix(seed + 1, 3, H)] : null;
  if (visualTokens) for (let k = 0; k < 3; k++) embeddings[0][2 + k] = visualTokens[0][k];
  const res = randomArray(seed + 2, 2 * L * H, 2);
  return {
    embeddings,
    visualTokens,
    spans: withImage ? [[{ imageIndex: 0, start: 2, length: 3 }], []] : [[], []],
    attentionMask: [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]],
    textMask: withImage ? [[1, 1, 0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]] : [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]],
    hasImage: withImage ? [1, 0] : [0, 0],
    residual: [0, 1].map((b) => Array.from({ length: L }, (_, t) => res.slice((b * L + t) * H, (b * L + t + 1) * H))),
    probs: randomAttentionProbs(seed + 3, 2, 2, L, L),
  };
}

function context(x: Batch): WingsKeyContext {
  return {
    inputEmbeddings: tf.tensor3d(x.embeddings),
    positions: tf.tensor2d([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 0, 0]], undefined, 'int32'),
    attentionMask: tf.tensor2d(x.attentionMask),
    textMask: tf.tensor2d(x.textMask),
    imageSpans: x.spans,
    hasImage: tf.tensor1d(x.hasImage),
    visualTokens: x.visualTokens ? tf.tensor3d(x.visualTokens) : null,
    isPrefill: true,
  };
}

interface Weights {
  visual: LearnerWeights64;
  textual: LearnerWeights64;
  routerWeight: number[][];
  routerBias: number[];
}

function randomWeights(seed: number): Weights {
  return {
    visual: randomLearnerWeights(seed, H, R),
    textual: randomLearnerWeights(seed + 100, H, R),
    routerWeight: randomMatrix(seed + 200, 2, MAX, 3),
    routerBias: [0.2, -0.1],
  };
}

function makeLayer(stage: 1 | 2, w?: Weights): WingsLayer {
  const layer = new WingsLayer({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA, stage, routerMaxLength: MAX });
  if (w) {
    const dict = new Map<string, tf.Tensor>([...learnerStateDict(w.visual, 'attn_pool.'), ...learnerStateDict(w.textual, 'attn_t_pool.')]);
    if (stage === 2) {
      dict.set('reweight_module.linear.weight', tf.tensor2d(w.routerWeight));
      dict.set('reweight_module.linear.bias', tf.tensor1d(w.routerBias));
    }
    layer.loadStateDict(dict);
    disposeStateDict(dict);
  }
  return layer;
}

function apply(layer: WingsLayer, x: Batch, compat: ReferenceCompat = {}): number[][][] {
  return tf.tidy(() => {
    const ctx = context(x);
    const textual = layer.stage === 2 ? (compat.misalignedTextMask ? buildReferenceTextualKeys(ctx, SP) : buildTextualKeys(ctx)) : null;
    return layer
      .forward({
        residual: tf.tensor3d(x.residual),
        positions: ctx.positions,
        attentionProbs: tf.tensor4d(x.probs),
        hasImage: ctx.hasImage,
        visual: buildVisualKeys(ctx),
        textual,
        referenceCompat: compat,
      })
      .arraySync();
  });
}

const POSITIONS = [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 0, 0]];

/** Float64 visual learner output: each sample's image tokens at their positions, nothing for samples without image. */
function visual64(w: LearnerWeights64, x: Batch): number[][][] {
  return [0, 1].map((b) => {
    if (x.spans[b].length === 0) return x.residual[b].map((row) => row.map(() => 0));
    const span = x.spans[b][0];
    return lorra64(w, HEADS, THETA, {
      query: [x.residual[b]],
      source: [x.visualTokens![span.imageIndex]],
      queryPositions: [POSITIONS[b]],
      keyPositions: [[0, 1, 2].map((k) => span.start + k)],
    })[0];
  });
}

/** Float64 clean textual learner: all text tokens as keys, causal by real position. */
function textual64(w: LearnerWeights64, x: Batch): number[][][] {
  return lorra64(w, HEADS, THETA, {
    query: x.residual,
    source: x.embeddings,
    queryPositions: POSITIONS,
    keyPositions: POSITIONS,
    keyMask: x.textMask,
    causalByPosition: true,
  });
}

function combine(x: Batch, terms: Array<{ weight: (b: number, t: number) => number; out: number[][][] }>): number[][][] {
  return x.residual.map((rows, b) => rows.map((row, t) => row.map((v, i) => terms.reduce((s, term) => s + term.weight(b, t) * term.out[b][t][i], v))));
}

describe('WingsLayer', () => {
  it('a fresh layer leaves the residual stream exactly unchanged (stage 1 and 2)', () => {
    for (const stage of [1, 2] as const) {
      const layer = makeLayer(stage);
      const x = batch(1);
      expect(apply(layer, x)).toEqual(tf.tidy(() => tf.tensor3d(x.residual).arraySync()));
      layer.dispose();
    }
  });

  it('names children like the reference layer; stage 1 has no router and a frozen textual learner', () => {
    const one = makeLayer(1);
    const names = one.namedParameters('model.layers.3.').map(([n]) => n);
    expect(names).toContain('model.layers.3.attn_pool.q_proj.0.weight');
    expect(names).toContain('model.layers.3.attn_t_pool.o_proj.1.weight');
    expect(names.some((n) => n.includes('reweight_module'))).toBe(false);
    expect(one.trainableWeights.length).toBe(8);
    const two = makeLayer(2);
    expect(two.namedParameters().map(([n]) => n).slice(-2)).toEqual(['reweight_module.linear.weight', 'reweight_module.linear.bias']);
    expect(two.trainableWeights.length).toBe(18);
    one.dispose();
    two.dispose();
  });

  it('stage 1: h + out_v·hasImage matches float64 (sample without image unchanged)', () => {
    const w = randomWeights(3);
    const layer = makeLayer(1, w);
    const x = batch(5);
    const before = tf.memory().numTensors;
    const got = apply(layer, x);
    expect(tf.memory().numTensors).toBe(before);
    const expected = combine(x, [{ weight: () => 1, out: visual64(w.visual, x) }]);
    expect(maxRelativeError(got, expected)).toBeLessThan(RELATIVE_TOLERANCE);
    expect(got[1]).toEqual(tf.tidy(() => tf.tensor2d(x.residual[1]).arraySync()));
    layer.dispose();
  });

  it('stage 2: h + w_v·out_v·hasImage + w_t·out_t matches float64', () => {
    const w = randomWeights(7);
    const layer = makeLayer(2, w);
    const x = batch(9);
    const gates = router64(w.routerWeight, w.routerBias, x.probs);
    const expected = combine(x, [
      { weight: (b, t) => gates[b][t][0] * x.hasImage[b], out: visual64(w.visual, x) },
      { weight: (b, t) => gates[b][t][1], out: textual64(w.textual, x) },
    ]);
    expect(maxRelativeError(apply(layer, x), expected)).toBeLessThan(RELATIVE_TOLERANCE);
    layer.dispose();
  });

  it('clean text mask: perturbing token t+1 leaves outputs at ≤ t unchanged', () => {
    const layer = makeLayer(2, randomWeights(13));
    const x = batch(15);
    const base = apply(layer, x);
    const t = 5;
    const y = structuredClone(x);
    y.embeddings[0][t + 1] = y.embeddings[0][t + 1].map((v) => v + 4);
    y.residual[0][t + 1] = y.residual[0][t + 1].map((v) => v - 2);
    const out = apply(layer, y);
    for (let s = 0; s <= t; s++) expect(out[0][s]).toEqual(base[0][s]);
    expect(maxRelativeError(out[0][t + 1], base[0][t + 1])).toBeGreaterThan(1e-4);
    layer.dispose();
  });

  it('referenceCompat.doubleAdd doubles the whole stage-2 update, as the reference’s second add does (padded text keys or not)', () => {
    const layer = makeLayer(2, randomWeights(17));
    const x = batch(19);
    const clean = apply(layer, x);
    const doubled = apply(layer, x, { doubleAdd: true });
    const expected = x.residual.map((rows, b) => rows.map((row, t) => row.map((v, i) => v + 2 * (clean[b][t][i] - v))));
    expect(maxRelativeError(doubled, expected)).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(doubled, clean)).toBeGreaterThan(1e-3);
    layer.dispose();
  });

  it('referenceCompat.textOnlyNoRouter: a batch without images gets h + out_t, unweighted', () => {
    const w = randomWeights(23);
    const layer = makeLayer(2, w);
    const x = batch(25, false);
    const outText = textual64(w.textual, x);
    const gates = router64(w.routerWeight, w.routerBias, x.probs);
    const expectedClean = combine(x, [{ weight: (b, t) => gates[b][t][1], out: outText }]);
    const expectedCompat = combine(x, [{ weight: () => 1, out: outText }]);
    expect(maxRelativeError(apply(layer, x), expectedClean)).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(apply(layer, x, { textOnlyNoRouter: true }), expectedCompat)).toBeLessThan(RELATIVE_TOLERANCE);
    // With an image in the batch the switch changes nothing.
    const y = batch(27);
    expect(apply(layer, y, { textOnlyNoRouter: true })).toEqual(apply(layer, y));
    layer.dispose();
  });

  it('referenceCompat.misalignedTextMask: reference key lists, column-index mask, uniform padded rows (float64) and its future leak', () => {
    // Key lists: image sample → [sp, 2) ∪ [5, 8) = [1, 5, 6, 7] padded with its last index; text-only sample → [0, 8).
    const lists = referenceTextKeyIndices([[{ imageIndex: 0, start: 2, length: 3 }], []], L, SP);
    expect(lists).toEqual({ indices: [[1, 5, 6, 7, 7, 7, 7, 7], [0, 1, 2, 3, 4, 5, 6, 7]], padding: [4, 0] });

    const w = randomWeights(29);
    const layer = makeLayer(2, w);
    const x = batch(31);
    const keys = lists.indices;
    // Reference mask: column j allowed iff j ≤ t and attentionMask[b][j]; the last padding[b] query rows fully masked (uniform).
    const attendMask = [0, 1].map((b) =>
      Array.from({ length: L }, (_, t) => keys[b].map((_, j) => (t < L - lists.padding[b] && j <= t && x.attentionMask[b][j] ? 1 : 0))),
    );
    const outText = lorra64(w.textual, HEADS, THETA, {
      query: x.residual,
      source: keys.map((list, b) => list.map((i) => x.embeddings[b][i])),
      queryPositions: POSITIONS,
      keyPositions: keys,
      attendMask,
      fullyMaskedRows: 'uniform',
    });
    const gates = router64(w.routerWeight, w.routerBias, x.probs);
    const expected = combine(x, [
      { weight: (b, t) => gates[b][t][0] * x.hasImage[b], out: visual64(w.visual, x) },
      { weight: (b, t) => gates[b][t][1], out: outText },
    ]);
    const got = apply(layer, x, { misalignedTextMask: true });
    expect(maxRelativeError(got, expected)).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(got, apply(layer, x))).toBeGreaterThan(1e-3);
    // Future leak: query 1 of the image sample sees key column 1 = real position 5.
    const y = structuredClone(x);
    y.embeddings[0][5] = y.embeddings[0][5].map((v) => v + 4);
    expect(maxRelativeError(apply(layer, y, { misalignedTextMask: true })[0][1], got[0][1])).toBeGreaterThan(1e-4);
    expect(apply(layer, y)[0][1]).toEqual(apply(layer, x)[0][1]);
    layer.dispose();
  });

  it('clean text keys with systemPromptLength leave positions [0, n) of image samples out, like the reference (float64)', () => {
    const w = randomWeights(37);
    const layer = makeLayer(2, w);
    const x = batch(39);
    const sp = 2;
    const got = tf.tidy(() => {
      const ctx = context(x);
      return layer
        .forward({
          residual: tf.tensor3d(x.residual),
          positions: ctx.positions,
          attentionProbs: tf.tensor4d(x.probs),
          hasImage: ctx.hasImage,
          visual: buildVisualKeys(ctx),
          textual: buildTextualKeys(ctx, sp),
        })
        .arraySync();
    });
    // Sample 0 (image) keeps text keys from position 2 on; sample 1 (text only) keeps all of them.
    const keyMask = x.textMask.map((row, b) => row.map((v, t) => (x.hasImage[b] && t < sp ? 0 : v)));
    expect(keyMask[0]).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    const outText = lorra64(w.textual, HEADS, THETA, {
      query: x.residual, source: x.embeddings, queryPositions: POSITIONS, keyPositions: POSITIONS, keyMask, causalByPosition: true,
    });
    const gates = router64(w.routerWeight, w.routerBias, x.probs);
    const expected = combine(x, [
      { weight: (b, t) => gates[b][t][0] * x.hasImage[b], out: visual64(w.visual, x) },
      { weight: (b, t) => gates[b][t][1], out: outText },
    ]);
    expect(maxRelativeError(got, expected)).toBeLessThan(RELATIVE_TOLERANCE);
    expect(maxRelativeError(got, apply(layer, x))).toBeGreaterThan(1e-3);
    expect(got[1]).toEqual(apply(layer, x)[1]);
    expect(() => tf.tidy(() => buildTextualKeys(context(x), -1).source)).toThrowError(/systemPromptLength must be a non-negative integer, got -1/);
    layer.dispose();
  });

  it('visual keys: per-sample image tokens at their real positions, padded and masked', () => {
    tf.tidy(() => {
      const x = batch(33);
      const keys = buildVisualKeys(context(x))!;
      expect(keys.source.shape).toEqual([2, 3, H]);
      expect(keys.positions.arraySync()).toEqual([[2, 3, 4], [0, 0, 0]]);
      expect(keys.keyMask.arraySync()).toEqual([[1, 1, 1], [0, 0, 0]]);
      expect(maxRelativeError(keys.source.arraySync()[0], x.visualTokens![0])).toBeLessThan(1e-7);
      expect(buildVisualKeys(context(batch(35, false)))).toBeNull();
      // With the host's tables the spans are not read: the tables alone place the keys.
      const fromTables = buildVisualKeys({ ...context(x), imageSpans: [[], []], imageTables: imageTablesFromSpans(x.spans) })!;
      expect(fromTables.source.arraySync()).toEqual(keys.source.arraySync());
      expect(fromTables.positions.arraySync()).toEqual([[2, 3, 4], [0, 0, 0]]);
      expect(fromTables.keyMask.arraySync()).toEqual([[1, 1, 1], [0, 0, 0]]);
      const empty = { visualRows: [[], []], visualPositions: [[], []], imagesOfSample: [[], []] };
      expect(buildVisualKeys({ ...context(x), imageTables: empty })).toBeNull();
      expect(() => buildVisualKeys({ ...context(x), imageTables: { ...imageTablesFromSpans(x.spans), visualRows: [[0, 1, 2]] } }))
        .toThrowError(/imageTables.visualRows must have 2 entries \(one per sample\), got 1/);
      const bad = { ...context(x), imageSpans: [[{ imageIndex: 0, start: 6, length: 2 }], []] };
      expect(() => buildVisualKeys(bad)).toThrowError(/imageSpans\[0\] span \(start 6, length 2\) must hold the image's 3 visual tokens/);
      const badIndex = { ...context(x), imageSpans: [[], [{ imageIndex: 1, start: 0, length: 3 }]] };
      expect(() => buildVisualKeys(badIndex)).toThrowError(/imageSpans\[1\] imageIndex 1 is outside \[0, 1\)/);
    });
  });
});

describe('WingsLayer state dict round trip', () => {
  it('stateDict(prefix) -> safetensors -> a fresh layer loadStateDict(…, { prefix }) -> identical outputs (stage 1 and 2)', () => {
    for (const stage of [1, 2] as const) {
      const source = makeLayer(stage, randomWeights(91));
      const x = batch(92);
      const expected = apply(source, x);
      const prefix = 'model.layers.1.';
      const dict = source.stateDict(prefix);
      const bytes = saveSafetensors(dict);
      disposeStateDict(dict);
      const { tensors } = loadSafetensors(bytes);
      const fresh = makeLayer(stage);
      expect(apply(fresh, x)).not.toEqual(expected);
      fresh.loadStateDict([...tensors], { prefix }); // iterable pairs
      expect(apply(fresh, x)).toEqual(expected);
      disposeStateDict(tensors);
      source.dispose();
      fresh.dispose();
    }
  });
});
