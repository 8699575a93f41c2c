import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, imageTablesFromSpans, loadStateDict, setSeed, stateDict, type ImageSpan } from '@mllm/core';
import { checkGradients, checkVariableGradients, expectClose, expectNoLeaks } from '@mllm/core/testing';
import { LinearVPGC } from './index.js';
import { linearVpgcHook64, type ParamsF64 } from './test-support/float64-reference.js';
import { useTestBackend } from './test-support/backend.js';
import { paramsF64, randomParams, randomValues, toTensors } from './test-support/params.js';

useTestBackend();

// B = 2 samples, L = 14 positions; sample 0 has images 0 and 1, sample 1 has image 2; Nv = 3 tokens each.
const B = 2;
const L = 14;
const H = 8;
const Dv = 6;
const Nv = 3;
const imageSpans: ImageSpan[][] = [
  [
    { imageIndex: 0, start: 1, length: Nv },
    { imageIndex: 1, start: 6, length: Nv },
  ],
  [{ imageIndex: 2, start: 3, length: Nv }],
];
const imageToSample = [0, 0, 1];
const imageStart = [1, 6, 3];
const lastPromptIndex = [11, 9];

/** Random reference-layout weights loaded into `vpgc` (returned as float64, under `model.`). */
function randomize(vpgc: LinearVPGC, seed: number, std = 0.4): ParamsF64 {
  const shapes = [...paramsF64(vpgc)].map(([name, value]) => [name, value.shape] as [string, number[]]);
  const params = randomParams(shapes, seed, std);
  const tensors = toTensors(params);
  loadStateDict(vpgc, tensors);
  disposeStateDict(tensors);
  return new Map([...params].map(([name, value]) => [`model.${name}`, value]));
}

interface Inputs {
  hidden: Float64Array;
  features: Float64Array;
  hiddenTensor: tf.Tensor3D;
  featuresTensor: tf.Tensor3D;
  dispose(): void;
}

function inputs(seed: number): Inputs {
  const hidden = randomValues(seed, B * L * H);
  const features = randomValues(seed + 1, 3 * Nv * Dv);
  const hiddenTensor = tf.tensor3d(Float32Array.from(hidden), [B, L, H]);
  const featuresTensor = tf.tensor3d(Float32Array.from(features), [3, Nv, Dv]);
  return { hidden, features, hiddenTensor, featuresTensor, dispose: () => tf.dispose([hiddenTensor, featuresTensor]) };
}

function hook64(params: ParamsF64, hidden: Float64Array, features: Float64Array, last = lastPromptIndex): Float64Array {
  const images = [0, 1, 2].map((k) => features.slice(k * Nv * Dv, (k + 1) * Nv * Dv));
  return linearVpgcHook64(params, { hidden, B, L, H, lastPromptIndex: last, images, Nv, Dv, imageToSample, imageStart });
}

const make = (updateLayer = 1) => new LinearVPGC({ llmHiddenSize: H, visionHiddenSize: Dv, updateLayer });
const span = (at: Inputs) => ({ hidden: at.hiddenTensor, imageFeatures: at.featuresTensor, lastPromptIndex, imageToSample, imageSpans });

describe('LinearVPGC (the paper\'s linear-VPG variant of VPG-C)', () => {
  it('has two bias-free projections: guidance_proj [H, H] zero, visual_proj [H, Dv] U(±1/√Dv)', () => {
    setSeed(1);
    const vpgc = make();
    const dict = stateDict(vpgc);
    expect([...dict.keys()].sort()).toEqual(['guidance_proj.weight', 'visual_proj.weight']);
    expect(dict.get('guidance_proj.weight')!.shape).toEqual([H, H]);
    expect(dict.get('visual_proj.weight')!.shape).toEqual([H, Dv]);
    expect(Array.from(dict.get('guidance_proj.weight')!.dataSync()).every((v) => v === 0)).toBe(true);
    const w2 = Array.from(dict.get('visual_proj.weight')!.dataSync());
    const bound = 1 / Math.sqrt(Dv);
    expect(w2.every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(new Set(w2).size).toBe(H * Dv); // random, not constant
    expect(vpgc.parameterCount()).toBe(H * H + H * Dv);
    // docs/vpgc.md's count for LLaVA-1.5-7B (H = 4096, CLIP ViT-L Dv = 1024) by the same formula
    expect(4096 * 4096 + 4096 * 1024).toBe(20_971_520);
    disposeStateDict(dict);
    vpgc.dispose();
  });

  it('matches the float64 formula V̄ = (W1 g 1ᵀ) ⊙ (W2 X), added only on each image\'s tokens', () => {
    const vpgc = make();
    const params = randomize(vpgc, 2);
    const at = inputs(10);
    const start = tf.memory().numTensors;
    const out = vpgc.addResidual(span(at));
    expect(tf.memory().numTensors).toBe(start + 1);
    const expected = hook64(params, at.hidden, at.features);
    expectClose(out, expected, { label: 'linear VPG-C hook' });
    const actual = out.dataSync();
    const onSpan = new Set<number>();
    imageSpans.forEach((spans, b) => spans.forEach((s) => { for (let t = 0; t < s.length; t++) onSpan.add(b * L + s.start + t); }));
    for (let p = 0; p < B * L; p++) {
      const row = Array.from(actual.slice(p * H, (p + 1) * H));
      const input = Array.from(Float32Array.from(at.hidden.slice(p * H, (p + 1) * H)));
      if (onSpan.has(p)) expect(row).not.toEqual(input);
      else expect(row).toEqual(input); // bit-exact off the image tokens (guidance token included)
    }
    // The guidance token matters: moving it changes the update, as the float64 formula says.
    const moved = vpgc.addResidual({ ...span(at), lastPromptIndex: [10, 9] });
    expectClose(moved, hook64(params, at.hidden, at.features, [10, 9]));
    expect(Math.max(...Array.from(moved.dataSync()).map((v, i) => Math.abs(v - actual[i])))).toBeGreaterThan(1e-3);
    // The host's per-forward tables give the same result as walking the spans.
    const viaTables = vpgc.addResidual({ ...span(at), imageTables: imageTablesFromSpans(imageSpans) });
    expect(Array.from(viaTables.dataSync())).toEqual(Array.from(actual));
    tf.dispose([out, moved, viaTables]);
    at.dispose();
    vpgc.dispose();
  });

  it('zero guidance (or the zero init of guidance_proj) leaves the hidden states exactly unchanged', () => {
    const fresh = make();
    const at = inputs(20);
    const atInit = fresh.residual(span(at));
    expect(Array.from(atInit.dataSync()).every((v) => v === 0)).toBe(true);
    const trained = make();
    randomize(trained, 3);
    // g = 0 at the guidance tokens: no bias anywhere, so V̄ = (W1·0·1ᵀ) ⊙ (W2 X) = 0 for any weights.
    const zeroed = at.hidden.slice();
    lastPromptIndex.forEach((t, b) => zeroed.fill(0, (b * L + t) * H, (b * L + t + 1) * H));
    const hidden = tf.tensor3d(Float32Array.from(zeroed), [B, L, H]);
    const out = trained.addResidual({ ...span(at), hidden });
    expect(Array.from(out.dataSync())).toEqual(Array.from(hidden.dataSync()));
    // and a non-zero g does change it (the test above is not vacuous)
    const live = trained.residual(span(at));
    expect(Array.from(live.dataSync()).some((v) => v !== 0)).toBe(true);
    tf.dispose([atInit, hidden, out, live]);
    at.dispose();
    fresh.dispose();
    trained.dispose();
  });

  it('gradients match central differences (hidden states, features, W1 and W2)', () => {
    const vpgc = make();
    randomize(vpgc, 4, 0.5);
    const at = inputs(30);
    const weights = tf.tensor3d(Float32Array.from(randomValues(31, B * L * H)), [B, L, H]);
    const loss = (hidden: tf.Tensor, features: tf.Tensor) =>
      tf.sum(tf.mul(vpgc.addResidual({ ...span(at), hidden: hidden as tf.Tensor3D, imageFeatures: features as tf.Tensor3D }), weights));
    const inputsReport = checkGradients(loss, [at.hiddenTensor, at.featuresTensor], { label: 'linear VPG-C inputs' });
    expect(inputsReport.checked).toBe(B * L * H + 3 * Nv * Dv);
    const report = checkVariableGradients(() => loss(at.hiddenTensor, at.featuresTensor), vpgc.trainableVariables(), { label: 'linear VPG-C weights' });
    expect(report.checked).toBe(H * H + H * Dv);
    weights.dispose();
    at.dispose();
    vpgc.dispose();
  });

  it('runs only at updateLayer on prefill passes with images', () => {
    const vpgc = make(2);
    randomize(vpgc, 5);
    const at = inputs(40);
    const ctx = { imageFeatures: at.featuresTensor, lastPromptIndex, imageToSample, imageSpans, isPrefill: true };
    expect(vpgc.beforeLayer(1, at.hiddenTensor, ctx)).toBeNull();
    expect(vpgc.beforeLayer(2, at.hiddenTensor, { ...ctx, isPrefill: false })).toBeNull();
    expect(vpgc.beforeLayer(2, at.hiddenTensor, { ...ctx, imageFeatures: null })).toBeNull();
    const fired = vpgc.beforeLayer(2, at.hiddenTensor, ctx)!;
    const direct = vpgc.addResidual(span(at));
    expect(Array.from(fired.dataSync())).toEqual(Array.from(direct.dataSync()));
    tf.dispose([fired, direct]);
    at.dispose();
    vpgc.dispose();
  });

  it('refuses bad input with clear errors and leaks nothing', () => {
    expect(() => new LinearVPGC({ llmHiddenSize: 0, visionHiddenSize: Dv, updateLayer: 1 })).toThrow(/llmHiddenSize must be a positive integer, got 0/);
    expect(() => new LinearVPGC({ llmHiddenSize: H, visionHiddenSize: Dv, updateLayer: -1 })).toThrow(/updateLayer must be a non-negative integer, got -1/);
    expect(() => new LinearVPGC({ llmHiddenSize: H, visionHiddenSize: Dv, updateLayer: 1, visonHiddenSize: 3 } as never)).toThrow(/unknown option "visonHiddenSize" \(did you mean "visionHiddenSize"\?\)/);
    const vpgc = make();
    const at = inputs(50);
    expectNoLeaks(() => {
      // a projector that pools (Ni ≠ Nv) has no token for each feature row
      const pooled = imageSpans.map((spans) => spans.map((s) => ({ ...s, length: 2 })));
      expect(() => vpgc.residual({ ...span(at), imageSpans: pooled })).toThrow(/image 0 has 2 tokens but 3 feature rows; .*one token/);
      const wide = tf.zeros([3, Nv, Dv + 1]) as tf.Tensor3D;
      expect(() => vpgc.residual({ ...span(at), imageFeatures: wide })).toThrow(/imageFeatures must be \[n, Nv, 6\] .*got \[3,3,7\]/);
      wide.dispose();
      expect(() => vpgc.residual({ ...span(at), lastPromptIndex: [11, 14] })).toThrow(/lastPromptIndex\[1\] must be in \[0, 14\), got 14/);
      expect(() => vpgc.residual({ ...span(at), imageToSample: [0, 1, 1] })).toThrow(/image 1 is in imageSpans\[0\] but imageToSample says sample 1/);
      const tokens = tf.zeros([3, 2, H]) as tf.Tensor3D;
      expect(() => vpgc.beforeLayer(1, at.hiddenTensor, { imageFeatures: at.featuresTensor, visualTokens: tokens, lastPromptIndex, imageToSample, imageSpans, isPrefill: true }))
        .toThrow(/projector gives 2 tokens per image from 3 feature rows/);
      tokens.dispose();
    });
    expect(() => vpgc.call()).toThrow(/attachLinearVPGC/);
    at.dispose();
    vpgc.dispose();
  });
});

describe('LinearVPGC with poisoned inputs', () => {
  it('NaN/Inf in hidden states outside the guidance tokens change no output bit; a NaN in one stays in its sample', async () => {
    const vpgc = make();
    randomize(vpgc, 6);
    const at = inputs(60);
    const residualOf = async (hidden: Float64Array) => {
      const h = tf.tensor3d(Float32Array.from(hidden), [B, L, H]);
      const out = vpgc.residual({ ...span(at), hidden: h });
      const values = Array.from(await out.data());
      tf.dispose([h, out]);
      return values;
    };
    const expected = await residualOf(at.hidden);
    expect(expected.every(Number.isFinite)).toBe(true);
    expect(expected.some((v) => v !== 0)).toBe(true);
    for (const poison of [NaN, Infinity, -Infinity]) {
      const poisoned = at.hidden.map((v, i) => (Math.floor(i / H) % L === lastPromptIndex[Math.floor(i / (L * H))] ? v : poison));
      expect(await residualOf(poisoned), String(poison)).toEqual(expected);
    }
    const hit = at.hidden.slice();
    hit[(L + lastPromptIndex[1]) * H] = NaN; // sample 1's guidance token
    const out = await residualOf(hit);
    expect(out.slice(0, L * H)).toEqual(expected.slice(0, L * H)); // sample 0 untouched
    const image = imageSpans[1][0];
    expect(out.slice((L + image.start) * H, (L + image.start + Nv) * H).every(Number.isNaN)).toBe(true);
    expect(out.slice(L * H, (L + image.start) * H).every((v) => v === 0)).toBe(true); // text positions stay exactly 0
    at.dispose();
    vpgc.dispose();
  });

  it('no images: an all-zero residual, and the hook does not fire', () => {
    const vpgc = make();
    randomize(vpgc, 7);
    const hidden = tf.ones([B, L, H]) as tf.Tensor3D;
    const none = tf.zeros([0, Nv, Dv]) as tf.Tensor3D;
    const empty = { hidden, imageFeatures: none, lastPromptIndex, imageToSample: [], imageSpans: [[], []] };
    const out = vpgc.residual(empty);
    expect(out.shape).toEqual([B, L, H]);
    expect(Array.from(out.dataSync()).every((v) => v === 0)).toBe(true);
    expect(vpgc.beforeLayer(1, hidden, { ...empty, isPrefill: true })).toBeNull();
    tf.dispose([hidden, none, out]);
    vpgc.dispose();
  });

  it('wrong kinds of argument: errors naming the argument, the expected and the actual value', () => {
    const vpgc = make();
    const at = inputs(70);
    const narrow = tf.zeros([B, H + 1]) as tf.Tensor2D;
    const cases: Array<[() => unknown, string | RegExp]> = [
      [() => new LinearVPGC(undefined as never), 'LinearVPGC: args must be an object, got undefined'],
      [() => new LinearVPGC({ llmHiddenSize: H, visionHiddenSize: '6', updateLayer: 1 } as never), 'LinearVPGC: visionHiddenSize must be a positive integer, got the string "6"'],
      [() => new LinearVPGC({ llmHiddenSize: H, visionHiddenSize: Dv, updateLayer: '1' } as never), 'LinearVPGC: updateLayer must be a non-negative integer, got the string "1"'],
      [() => vpgc.residual(undefined as never), 'LinearVPGC.residual: inputs must be an object, got undefined'],
      [() => vpgc.residual({ hidden: [[[0]]] } as never), 'LinearVPGC.residual: hidden must be a tf.Tensor of rank 3 (float32), got a plain array (length 1)'],
      [() => vpgc.residual({ ...span(at), imageSpans: undefined } as never), 'VPGC: imageSpans must be an array (one list of spans per sample), got undefined'],
      [() => vpgc.guidance(at.hiddenTensor, undefined as never), 'LinearVPGC: lastPromptIndex must be an array of indices, got undefined'],
      [() => vpgc.residualPrompts(narrow, at.featuresTensor, imageToSample), `LinearVPGC: guidance must be [B, ${H}], got [2,9]`],
    ];
    for (const [fn, message] of cases) expect(fn, String(message)).toThrow(message);
    tf.dispose([narrow]);
    at.dispose();
    vpgc.dispose();
  });
});
