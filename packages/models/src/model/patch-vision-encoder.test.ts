import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed, stateDict, disposeStateDict } from '@mllm/core';
import { expectClose, expectNoLeaks, reloadLayersModel, testBackend } from '@mllm/core/testing';
import { PatchVisionEncoder, VisionEncoderBlock, patchify } from '../index.js';

const CONFIG = { imageSize: 4, patchSize: 2, numChannels: 3, hiddenSize: 6, numLayers: 1, numHeads: 2, intermediateSize: 8 };

/** erf, Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

/** Float64 reference of the encoder (1 block) from reference-layout weights. */
function reference(w: Map<string, Float64Array>, pixels: number[][][][]): number[][][] {
  const { imageSize: S, patchSize: p, numChannels: C, hiddenSize: D, numHeads: nh, intermediateSize: I } = CONFIG;
  const g = (n: string) => w.get(`${n}`)!;
  const linear = (x: number[], W: Float64Array, b: Float64Array | null, outF: number) =>
    Array.from({ length: outF }, (_, o) => x.reduce((s, v, k) => s + v * W[o * x.length + k], b ? b[o] : 0));
  const ln = (x: number[], wt: Float64Array, bs: Float64Array) => {
    const m = x.reduce((a, b) => a + b, 0) / x.length;
    const v = x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length;
    return x.map((xi, j) => ((xi - m) / Math.sqrt(v + 1e-5)) * wt[j] + bs[j]);
  };
  const d = D / nh;
  const b0 = 'encoder.layers.0.';
  return pixels.map((img) => {
    const tokens: number[][] = [Array.from(g('embeddings.class_embedding'))];
    for (let gy = 0; gy < S / p; gy++) for (let gx = 0; gx < S / p; gx++) {
      const patch: number[] = [];
      for (let iy = 0; iy < p; iy++) for (let ix = 0; ix < p; ix++) for (let c = 0; c < C; c++) patch.push((img[gy * p + iy][gx * p + ix][c] - 0.5) / 0.5);
      tokens.push(linear(patch, g('embeddings.patch_embedding.weight'), g('embeddings.patch_embedding.bias'), D));
    }
    const pos = g('embeddings.position_embedding.weight');
    let h = tokens.map((t, i) => t.map((v, j) => v + pos[i * D + j]));
    const xn = h.map((t) => ln(t, g(`${b0}layer_norm1.weight`), g(`${b0}layer_norm1.bias`)));
    const proj = (n: string) => xn.map((t) => linear(t, g(`${b0}self_attn.${n}.weight`), g(`${b0}self_attn.${n}.bias`), D));
    const q = proj('q_proj'), k = proj('k_proj'), v = proj('v_proj');
    const merged = q.map((qi) => {
      const out = new Array<number>(D).fill(0);
      for (let hh = 0; hh < nh; hh++) {
        const sc = k.map((kj) => { let s = 0; for (let e = 0; e < d; e++) s += qi[hh * d + e] * kj[hh * d + e]; return s / Math.sqrt(d); });
        const m = Math.max(...sc), ex = sc.map((s) => Math.exp(s - m)), z = ex.reduce((a, b) => a + b, 0);
        v.forEach((vj, j) => { for (let e = 0; e < d; e++) out[hh * d + e] += (ex[j] / z) * vj[hh * d + e]; });
      }
      return out;
    });
    h = h.map((t, i) => { const o = linear(merged[i], g(`${b0}self_attn.o_proj.weight`), g(`${b0}self_attn.o_proj.bias`), D); return t.map((x, j) => x + o[j]); });
    h = h.map((t) => {
      const f1 = linear(ln(t, g(`${b0}layer_norm2.weight`), g(`${b0}layer_norm2.bias`)), g(`${b0}mlp.fc1.weight`), g(`${b0}mlp.fc1.bias`), I);
      const f2 = linear(f1.map((x) => 0.5 * x * (1 + erf(x / Math.SQRT2))), g(`${b0}mlp.fc2.weight`), g(`${b0}mlp.fc2.bias`), D);
      return t.map((x, j) => x + f2[j]);
    });
    return h.map((t) => ln(t, g('post_layernorm.weight'), g('post_layernorm.bias')));
  });
}

describe('PatchVisionEncoder', () => {
  it('patchifies channels-last images in (row, column, channel) order', () => {
    const x = tf.tensor4d(Array.from({ length: 2 * 4 * 4 * 3 }, (_, i) => i), [2, 4, 4, 3]);
    const patches = patchify(x, 2).arraySync();
    const px = x.arraySync();
    expect([patches.length, patches[0].length, patches[0][0].length]).toEqual([2, 4, 12]);
    for (let n = 0; n < 2; n++) for (let gy = 0; gy < 2; gy++) for (let gx = 0; gx < 2; gx++) {
      const expected: number[] = [];
      for (let iy = 0; iy < 2; iy++) for (let ix = 0; ix < 2; ix++) expected.push(...px[n][gy * 2 + iy][gx * 2 + ix]);
      expect(patches[n][gy * 2 + gx]).toEqual(expected);
    }
    x.dispose();
  });

  it('matches a float64 reference; CLS is row 0; patch / cls_patch selection', () => {
    setSeed(21);
    const encoder = new PatchVisionEncoder({ config: CONFIG });
    // give the zero-initialized / default parameters non-trivial values
    const sd = stateDict(encoder);
    const weights = new Map<string, Float64Array>();
    const perturbed = new Map<string, tf.Tensor>();
    let k = 0;
    for (const [name, value] of sd) {
      const t = tf.add(value, tf.randomUniform(value.shape, -0.3, 0.3, 'float32', 100 + k++));
      perturbed.set(name, t);
      weights.set(name, Float64Array.from(t.dataSync()));
    }
    for (const [name, p] of encoder.namedParameters()) p.variable.write(p.layout === 'linear' ? tf.transpose(perturbed.get(name)!) : perturbed.get(name)!);
    disposeStateDict(sd);
    const pixels = tf.randomUniform([2, 4, 4, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const full = encoder.encode(pixels);
    expect(full.shape).toEqual([2, 5, 6]);
    const tol = testBackend() === 'webgpu' ? { rtol: 1e-3, atol: 1e-4 } : { rtol: 1e-4, atol: 1e-5 };
    expectClose(full, reference(weights, pixels.arraySync()), tol);
    const selected = encoder.forward(pixels);
    expect(selected.shape).toEqual([2, 4, 6]);
    expectClose(selected, tf.slice(full, [0, 1, 0], [2, 4, 6]), { rtol: 0, atol: 0 });
    expectNoLeaks(() => encoder.forward(pixels));
    expect(() => encoder.forward(tf.zeros([1, 4, 4, 1]) as tf.Tensor4D)).toThrow(/images must be \[numImages, 4, 4, 3\], got \[1,4,4,1\]/);
    const names = encoder.namedParameters().map(([n]) => n);
    expect(names).toContain('embeddings.position_embedding.weight');
    expect(names).toContain('encoder.layers.0.mlp.fc2.bias');
    tf.dispose([full, selected, pixels, ...perturbed.values()]);
    encoder.dispose();
    const withCls = new PatchVisionEncoder({ config: { ...CONFIG, selectFeature: 'cls_patch' } });
    expect(withCls.numFeatureTokens).toBe(5);
    withCls.dispose();
    expect(() => new PatchVisionEncoder({ config: { ...CONFIG, patchSize: 3 } })).toThrow(/imageSize 4 must be divisible by patchSize 3/);
  });
});

describe('PatchVisionEncoder and VisionEncoderBlock as tfjs-layers layers', () => {
  it('round-trip model.save / loadLayersModel with the same features', async () => {
    setSeed(5);
    const images = tf.input({ shape: [8, 8, 3] });
    const encoder = new PatchVisionEncoder({ config: { imageSize: 8, patchSize: 4, hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 12 } });
    const block = new VisionEncoderBlock({ hiddenSize: 8, numHeads: 2, intermediateSize: 12, layerNormEps: 1e-5 });
    const model = tf.model({ inputs: images, outputs: block.apply(encoder.apply(images)) as tf.SymbolicTensor });
    const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 9);
    const expected = model.predict(x) as tf.Tensor;
    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(encoder.weights.length + block.weights.length);
    expect(names).toContain(`${encoder.name}.encoder.layers.1.mlp.fc2.weight`);
    const actual = loaded.predict(x) as tf.Tensor;
    expectClose(actual, expected, { atol: 0, rtol: 0 });
    tf.dispose([x, expected, actual]);
    model.dispose();
    loaded.dispose();
  });
});
