import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, setSeed, stateDict, disposeStateDict, type DecoderHooks, type ForwardContext } from '@mllm/core';
import { expectClose, expectNoLeaks, reloadLayersModel, saveLayersModelInMemory, testBackend } from '@mllm/core/testing';
import { DecoderLayer, Embedding, HostLM } from '../index.js';

const CONFIG = { vocabSize: 11, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 12, ropeTheta: 100, rmsEps: 1e-6 };

/** Float64 reference of a 1-layer HostLM forward (plain loops over the reference-layout weights). */
function referenceForward(weights: Map<string, Float64Array>, ids: number[][], mask: number[][]): number[][][] {
  const { hiddenSize: H, numHeads: nh, intermediateSize: I, vocabSize: V, ropeTheta, rmsEps } = CONFIG;
  const d = H / nh;
  const w = (name: string) => weights.get(name)!;
  const linear = (x: number[], W: Float64Array, outF: number): number[] => {
    const inF = x.length;
    return Array.from({ length: outF }, (_, o) => x.reduce((s, v, k) => s + v * W[o * inF + k], 0));
  };
  const rms = (x: number[], g: Float64Array) => {
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + rmsEps);
    return x.map((v, j) => v * r * g[j]);
  };
  const rope = (x: number[], pos: number) => {
    const out = new Array<number>(H);
    for (let h = 0; h < nh; h++) {
      for (let j = 0; j < d; j++) {
        const freq = Math.pow(ropeTheta, (-2 * (j % (d / 2))) / d);
        const c = Math.cos(pos * freq), s = Math.sin(pos * freq);
        const rotated = j < d / 2 ? -x[h * d + j + d / 2] : x[h * d + j - d / 2];
        out[h * d + j] = x[h * d + j] * c + rotated * s;
      }
    }
    return out;
  };
  const silu = (v: number) => v / (1 + Math.exp(-v));
  return ids.map((row, b) => {
    const L = row.length;
    const x = row.map((id) => Array.from(w('model.embed_tokens.weight').subarray(id * H, (id + 1) * H)));
    const xn = x.map((v) => rms(v, w('model.layers.0.input_layernorm.weight')));
    const q = xn.map((v, t) => rope(linear(v, w('model.layers.0.self_attn.q_proj.weight'), H), t));
    const k = xn.map((v, t) => rope(linear(v, w('model.layers.0.self_attn.k_proj.weight'), H), t));
    const v = xn.map((v0) => linear(v0, w('model.layers.0.self_attn.v_proj.weight'), H));
    return x.map((xt, t) => {
      const merged = new Array<number>(H).fill(0);
      for (let h = 0; h < nh; h++) {
        const keys = [...Array(L).keys()].filter((j) => j <= t && mask[b][j] === 1);
        const scores = keys.map((j) => { let s = 0; for (let e = 0; e < d; e++) s += q[t][h * d + e] * k[j][h * d + e]; return s / Math.sqrt(d); });
        const m = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - m));
        const z = ex.reduce((a, c) => a + c, 0);
        keys.forEach((j, n) => { for (let e = 0; e < d; e++) merged[h * d + e] += (ex[n] / z) * v[j][h * d + e]; });
      }
      const attn = linear(merged, w('model.layers.0.self_attn.o_proj.weight'), H);
      const h1 = xt.map((val, j) => val + attn[j]);
      const h1n = rms(h1, w('model.layers.0.post_attention_layernorm.weight'));
      const gate = linear(h1n, w('model.layers.0.mlp.gate_proj.weight'), I);
      const up = linear(h1n, w('model.layers.0.mlp.up_proj.weight'), I);
      const down = linear(gate.map((g, i) => silu(g) * up[i]), w('model.layers.0.mlp.down_proj.weight'), H);
      const h2 = h1.map((val, j) => val + down[j]);
      return linear(rms(h2, w('model.norm.weight')), w('lm_head.weight'), V);
    });
  });
}

describe('HostLM', () => {
  it('uses LLaMA/Qwen2 parameter names; tied embeddings drop lm_head', () => {
    setSeed(3);
    const lm = new HostLM({ config: { ...CONFIG, numLayers: 2 } });
    const names = lm.namedParameters().map(([n]) => n);
    expect(names).toContain('model.embed_tokens.weight');
    expect(names).toContain('model.layers.1.self_attn.q_proj.weight');
    expect(names).toContain('model.layers.0.mlp.gate_proj.weight');
    expect(names).toContain('model.layers.1.post_attention_layernorm.weight');
    expect(names).toContain('model.norm.weight');
    expect(names).toContain('lm_head.weight');
    expect(lm.namedParameters().find(([n]) => n === 'lm_head.weight')![1].referenceShape).toEqual([11, 8]);
    lm.dispose();
    const tied = new HostLM({ config: { ...CONFIG, tieEmbeddings: true } });
    expect(tied.namedParameters().map(([n]) => n)).not.toContain('lm_head.weight');
    const logits = tied.forwardText(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32'));
    expect(logits.shape).toEqual([1, 3, 11]);
    logits.dispose();
    tied.dispose();
    expect(() => new HostLM({ config: { ...CONFIG, numHeads: 3 } })).toThrow(/hiddenSize 8 must be divisible by numHeads 3/);
  });

  it('matches a float64 reference forward (1 layer, right-padded batch)', () => {
    setSeed(11);
    const lm = new HostLM({ config: CONFIG });
    const ids = [[1, 5, 2, 9, 4], [3, 7, 10, 0, 0]];
    const mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]];
    const sd = stateDict(lm);
    const weights = new Map([...sd].map(([k, v]) => [k, Float64Array.from(v.dataSync())]));
    disposeStateDict(sd);
    const idsT = tf.tensor2d(ids, [2, 5], 'int32');
    const maskT = tf.tensor2d(mask, [2, 5], 'int32');
    const logits = lm.forwardText(idsT, maskT);
    expect(logits.shape).toEqual([2, 5, 11]);
    const expected = referenceForward(weights, ids, mask);
    // SwiftShader WebGPU's cos/sin are off by up to ~2e-4 (absolute), which rotary carries into the logits
    const tol = testBackend() === 'webgpu' ? { rtol: 5e-3, atol: 5e-4 } : { rtol: 1e-4, atol: 1e-5 };
    expectClose(logits, expected, tol);
    tf.dispose([idsT, maskT, logits]);
    lm.dispose();
  });

  it('is causal: changing token t+1 leaves logits at positions ≤ t unchanged', () => {
    setSeed(5);
    const lm = new HostLM({ config: { ...CONFIG, numLayers: 2 } });
    const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const b = tf.tensor2d([[1, 2, 3, 9, 0, 7]], [1, 6], 'int32');
    const la = lm.forwardText(a).arraySync()[0];
    const lb = lm.forwardText(b).arraySync()[0];
    for (let t = 0; t < 3; t++) expectClose(lb[t], la[t], { rtol: 1e-6, atol: 1e-6 });
    expect(Math.max(...la[3].map((v, i) => Math.abs(v - lb[3][i])))).toBeGreaterThan(1e-4);
    tf.dispose([a, b]);
    lm.dispose();
  });

  it('fires beforeLayer at the layer input and afterAttention with probs only where requested', () => {
    setSeed(9);
    const lm = new HostLM({ config: { ...CONFIG, numLayers: 3 } });
    const ids = tf.tensor2d([[4, 1, 6, 2], [3, 3, 8, 0]], [2, 4], 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 1, 0]], [2, 4], 'int32');
    const seenBefore: Array<{ layer: number; hidden: number[][][]; ctx: ForwardContext }> = [];
    const seenAfter: Array<{ layer: number; probs: number[][][][] | null; residual: number[][][]; input: number[][][] }> = [];
    const hooks: DecoderHooks = {
      attentionProbsLayers: [1],
      beforeLayer: (layer, hidden, ctx) => { seenBefore.push({ layer, hidden: hidden.arraySync(), ctx }); return null; },
      afterAttention: (layer, args) => {
        seenAfter.push({ layer, probs: args.attentionProbs?.arraySync() ?? null, residual: args.residual.arraySync(), input: args.layerInput.arraySync() });
        return null;
      },
    };
    const handle = lm.addHooks(hooks);
    const logits = lm.forwardText(ids, mask);
    expect(seenBefore.map((s) => s.layer)).toEqual([0, 1, 2]);
    expect(seenAfter.map((s) => s.layer)).toEqual([0, 1, 2]);
    expect(seenAfter[0].probs).toBeNull();
    expect(seenAfter[2].probs).toBeNull();
    const probs = seenAfter[1].probs!;
    expect([probs.length, probs[0].length, probs[0][0].length, probs[0][0][0].length]).toEqual([2, 2, 4, 4]);
    // causal + padding: rows sum to 1, future and padded keys get 0
    for (let b = 0; b < 2; b++) for (let h = 0; h < 2; h++) for (let i = 0; i < 4; i++) {
      expect(probs[b][h][i].reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
      for (let j = i + 1; j < 4; j++) expect(probs[b][h][i][j]).toBe(0);
    }
    expect(probs[1][0][3][3]).toBe(0);
    // layer 0's input is the embedding; layer 1's input equals layer 0's output computed directly
    const emb = lm.embed(ids);
    expectClose(seenBefore[0].hidden, emb, { rtol: 1e-6, atol: 1e-7 });
    expectClose(seenAfter[0].input, emb, { rtol: 1e-6, atol: 1e-7 });
    const positions = tf.tensor2d([[0, 1, 2, 3], [0, 1, 2, 3]], [2, 4], 'int32');
    const causal = tf.tensor4d([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], [1, 1, 4, 4]);
    const keys = tf.reshape(mask, [2, 1, 1, 4]);
    const fullMask = tf.mul(causal, keys);
    const out0 = lm.layers[0].forward(emb, { positions, mask: fullMask });
    expectClose(seenBefore[1].hidden, out0.hidden, { rtol: 1e-5, atol: 1e-6 });
    expect(seenBefore[0].ctx.isPrefill).toBe(true);
    expect(seenBefore[0].ctx.attentionMask.shape).toEqual([2, 4]);
    handle.remove();
    handle.remove();
    const again = lm.forwardText(ids, mask);
    expect(seenBefore.length).toBe(3);
    expectClose(again, logits, { rtol: 1e-6, atol: 1e-7 });
    tf.dispose([ids, mask, logits, again, emb, positions, causal, keys, fullMask, out0.hidden, out0.present.keys, out0.present.values]);
    lm.dispose();
  });

  it('applies hook replacements in attach order and validates their shape', () => {
    setSeed(2);
    const lm = new HostLM({ config: { ...CONFIG, numLayers: 2 } });
    const ids = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    const base = lm.forwardText(ids);
    // zeroing layer-1 input twice through two hooks == zeroing once
    const calls: string[] = [];
    const h1 = lm.addHooks({ beforeLayer: (l, h) => { calls.push(`a${l}`); return l === 1 ? tf.zerosLike(h) : null; } });
    const h2 = lm.addHooks({ beforeLayer: (l, h) => { calls.push(`b${l}`); if (l === 1) expect(h.abs().sum().dataSync()[0]).toBe(0); return null; } });
    const zeroed = lm.forwardText(ids);
    expect(calls).toEqual(['a0', 'b0', 'a1', 'b1']);
    expect(tf.max(tf.abs(tf.sub(zeroed, base))).dataSync()[0]).toBeGreaterThan(1e-4);
    h1.remove(); h2.remove();
    const bad = lm.addHooks({ afterAttention: () => tf.zeros([1, 2, 8]) as tf.Tensor3D });
    const before = tf.memory().numTensors;
    expect(() => lm.forwardText(ids)).toThrow(/afterAttention hook must return \[1,3,8\], got \[1,2,8\]/);
    expect(tf.memory().numTensors).toBe(before);
    bad.remove();
    expect(() => lm.addHooks({ attentionProbsLayers: [5] })).toThrow(/attentionProbsLayers entries must be layer indices in \[0, 2\), got 5/);
    tf.dispose([ids, base, zeroed]);
    lm.dispose();
  });

  it('registers hook modules as children while attached', () => {
    setSeed(4);
    const lm = new HostLM({ config: CONFIG });
    const extra = new Linear({ inFeatures: 8, outFeatures: 8 });
    const named = new Linear({ inFeatures: 8, outFeatures: 2, bias: false });
    const count = lm.trainableVariables().length;
    const handle = lm.addHooks({ modules: () => [extra], namedModules: () => [['model.layers.0.attn_pool', named]] });
    const names = lm.namedParameters().map(([n]) => n);
    expect(names).toContain('hooks.0.0.weight');
    expect(names).toContain('hooks.0.0.bias');
    expect(names).toContain('model.layers.0.attn_pool.weight');
    expect(lm.trainableVariables().length).toBe(count + 3);
    expect(lm.hookModuleNames).toEqual(['model.layers.0.attn_pool', 'hooks.0.0']);
    handle.remove();
    expect(lm.trainableVariables().length).toBe(count);
    expect(extra.isDisposed).toBe(false);
    expect(() => lm.addHooks({ namedModules: () => [['lm_head', named]] })).toThrow(/already used/);
    expect(lm.hookModuleNames).toEqual([]);
    extra.dispose(); named.dispose(); lm.dispose();
  });

  it('does not leak tensors', () => {
    setSeed(6);
    const lm = new HostLM({ config: CONFIG });
    const ids = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
    expectNoLeaks(() => lm.forwardText(ids));
    expectNoLeaks(() => tf.variableGrads(() => tf.sum(lm.forwardText(ids)) as tf.Scalar, lm.trainableVariables()));
    ids.dispose();
    lm.dispose();
  });
});

describe('tfjs-layers model.save / loadLayersModel', () => {
  it('round-trips an Embedding (int32 ids) in a functional model', async () => {
    setSeed(4);
    const ids = tf.input({ shape: [3], dtype: 'int32' });
    const embedding = new Embedding({ numEmbeddings: 7, embeddingDim: 4 });
    const model = tf.model({ inputs: ids, outputs: new Linear({ inFeatures: 4, outFeatures: 2 }).apply(embedding.apply(ids)) as tf.SymbolicTensor });
    const x = tf.tensor2d([[0, 6, 3], [2, 2, 5]], [2, 3], 'int32');
    const expected = model.predict(x) as tf.Tensor;
    const { artifacts, loaded } = await reloadLayersModel(model);
    expect(artifacts.weightSpecs!.map((s) => s.name)).toContain(`${embedding.name}.weight`);
    const actual = loaded.predict(x) as tf.Tensor;
    expectClose(actual, expected, { atol: 0, rtol: 0 });
    tf.dispose([x, expected, actual]);
    model.dispose();
    loaded.dispose();
  });

  it('HostLM and DecoderLayer are not layers: apply and model.save fail naming the supported API', async () => {
    const ids = tf.input({ shape: [3], dtype: 'int32' });
    const lm = new HostLM({ config: CONFIG });
    const lmModel = tf.model({ inputs: ids, outputs: lm.apply(ids) as tf.SymbolicTensor });
    const x = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    expect(() => lmModel.predict(x)).toThrowError(/^HostLM is not a tfjs-layers layer: use forwardText\(inputIds\); save its stateDict\(\)/);
    await expect(saveLayersModelInMemory(lmModel)).rejects.toThrowError(/HostLM is not a tfjs-layers layer: use forwardText/);
    expect(tf.serialization.SerializationMap.getMap().classNameMap['mllm>HostLM']).toBeUndefined();

    const hidden = tf.input({ shape: [3, CONFIG.hiddenSize] });
    const layer = new DecoderLayer({ hiddenSize: CONFIG.hiddenSize, numHeads: 2, intermediateSize: 12, ropeTheta: 100, rmsEps: 1e-6 });
    const layerModel = tf.model({ inputs: hidden, outputs: layer.apply(hidden) as tf.SymbolicTensor });
    await expect(saveLayersModelInMemory(layerModel)).rejects.toThrowError(
      /DecoderLayer is not a tfjs-layers layer: use forward\(hidden, \{ positions, mask \}\); it is saved with its host \(saveHostModel/,
    );
    expect(() => layer.call()).toThrowError(/DecoderLayer is not a tfjs-layers layer/);
    tf.dispose(x);
    lmModel.dispose();
    layerModel.dispose();
  });
});
