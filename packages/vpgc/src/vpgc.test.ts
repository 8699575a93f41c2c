import { describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, imageTablesFromSpans, stateDict } from '@mllm/core';
import { expectClose } from '@mllm/core/testing';
import { VPGC, attachVPGC, defaultUpdateLayer, imageSpanScatterIndex, imageTablesScatterIndex, loadVPGCStateDict, vpgcStateDict } from './index.js';
import { vpgcHook64, type ParamsF64 } from './test-support/float64-reference.js';
import { backendTolerance, useTestBackend } from './test-support/backend.js';
import { relativeError, randomValues, toTensors } from './test-support/params.js';
import { FakeHost } from './test-support/fake-host.js';
import {
  B, H, L, Nq, Nv, imageSpans, imageStart, imageToSample, lastPromptIndex, makeBatch, makeVpg, qformerShape,
  randomizeVpg, randomizeVpgc, splice,
} from './test-support/fixture.js';

useTestBackend();

function hook64(params: ParamsF64, hidden: Float64Array, features: Float64Array): Float64Array {
  const Dv = qformerShape.encoderWidth;
  const images = [0, 1, 2].map((k) => features.slice(k * Nv * Dv, (k + 1) * Nv * Dv));
  return vpgcHook64(params, qformerShape, { hidden, B, L, H, lastPromptIndex, images, Nv, imageToSample, imageStart });
}

describe('VPGC', () => {
  it('has the reference names, shapes and zero init; queries copy the VPG queries', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 1);
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const dict = vpgcStateDict(vpgc);
    expect([...dict.keys()].sort()).toEqual([
      'llama_model.model.llm_proj.bias', 'llama_model.model.llm_proj.weight', 'llama_model.model.qformer_proj.bias',
      'llama_model.model.qformer_proj.weight', 'llama_model.model.query_tokens',
    ]);
    expect(dict.get('llama_model.model.qformer_proj.weight')!.shape).toEqual([8, H]);
    expect(dict.get('llama_model.model.llm_proj.weight')!.shape).toEqual([H, 8]);
    expect(dict.get('llama_model.model.query_tokens')!.shape).toEqual([1, Nq, 8]);
    for (const key of ['qformer_proj.weight', 'qformer_proj.bias', 'llm_proj.weight', 'llm_proj.bias']) {
      expect(Array.from(dict.get(`llama_model.model.${key}`)!.dataSync()).every((v) => v === 0)).toBe(true);
    }
    expect(Array.from(dict.get('llama_model.model.query_tokens')!.dataSync())).toEqual(Array.from(vpg.queryTokensValue.dataSync()));
    // 7B accounting of the paper (D = 4096, d = 768, K = 32): 6,320,896 parameters.
    expect((4096 * 768 + 768) + (768 * 4096 + 4096) + 32 * 768).toBe(6_320_896);
    expect(vpgc.parameterCount()).toBe(H * 8 + 8 + 8 * H + H + Nq * 8);
    disposeStateDict(dict);
    vpgc.dispose();
    vpg.dispose();
    expect(defaultUpdateLayer(32)).toBe(16);
    expect(defaultUpdateLayer(5)).toBe(2);
  });

  it('at init: the residual is exactly zero and the host logits are exactly unchanged; with g = 0 the re-run equals the first pass', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 2);
    const host = new FakeHost(H, 4, 10, vpg);
    const batch = makeBatch(20);
    const embeddings = splice(vpg, batch);
    const before = host.forward(embeddings, batch.ctx);
    const attached = attachVPGC(host);
    expect(attached.vpgc.updateLayer).toBe(2);
    const after = host.forward(embeddings, batch.ctx);
    expect(Array.from(after.dataSync())).toEqual(Array.from(before.dataSync()));
    const residual = attached.vpgc.residual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor });
    expect(Array.from(residual.dataSync()).every((v) => v === 0)).toBe(true);
    // g = 0 (qformer_proj zero) and copied queries: the second Q-Former pass reproduces the first.
    const first = vpg.encode(batch.featuresTensor);
    const g = tf.zeros([B, 8]) as tf.Tensor2D;
    const second = tf.tidy(() => {
      const queries = tf.add(attached.vpgc.queryTokensValue, tf.zeros([3, 1, 8])) as tf.Tensor3D;
      return vpg.qformer.forward(queries, vpg.normalizeFeatures(batch.featuresTensor));
    });
    expect(Array.from(second.dataSync())).toEqual(Array.from(first.dataSync()));
    tf.dispose([embeddings, before, after, residual, first, g, second]);
    attached.remove();
    attached.vpgc.dispose();
    host.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('matches the float64 hook: guidance from the last prompt token, shared by a sample\'s images, residual only on image spans', () => {
    const vpg = makeVpg();
    const vpgParams = randomizeVpg(vpg, 3);
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const vpgcParams = randomizeVpgc(vpgc, 4);
    const batch = makeBatch(30);
    const start = tf.memory().numTensors;
    const out = vpgc.addResidual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor });
    expect(tf.memory().numTensors).toBe(start + 1);
    const expected = hook64(new Map([...vpgParams, ...vpgcParams]), batch.hidden, batch.features);
    const actual = out.dataSync();
    expect(relativeError(actual, expected)).toBeLessThan(backendTolerance(1e-5));
    const onSpan = new Set<number>();
    imageSpans.forEach((spans, b) => spans.forEach((s) => { for (let t = 0; t < s.length; t++) onSpan.add(b * L + s.start + t); }));
    for (let p = 0; p < B * L; p++) {
      const row = Array.from(actual.slice(p * H, (p + 1) * H));
      const input = Array.from(Float32Array.from(batch.hidden.slice(p * H, (p + 1) * H)));
      if (onSpan.has(p)) expect(row).not.toEqual(input);
      else expect(row).toEqual(input); // bit-exact outside image spans (guidance token included)
    }
    // The guidance token matters: moving it changes the residual.
    const moved = vpgc.addResidual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor, lastPromptIndex: [12, 12] });
    expect(relativeError(moved.dataSync(), actual)).toBeGreaterThan(1e-4);
    tf.dispose([out, moved]);
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('fires only at updateLayer on the prefill pass (cached decode steps never re-run the Q-Former)', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 5);
    const host = new FakeHost(H, 4, 10, vpg);
    const attached = attachVPGC(host, { updateLayer: 1 });
    randomizeVpgc(attached.vpgc, 6);
    const run = vi.spyOn(vpg.qformer, 'run');
    const batch = makeBatch(40);
    const embeddings = splice(vpg, batch);
    run.mockClear();
    const baseline = tf.tidy(() => {
      attached.remove();
      return host.forward(embeddings, batch.ctx, true);
    });
    const baseInputs = host.recorded.map((t) => t.dataSync());
    host.clearRecorded();
    const again = attachVPGC(host, { vpgc: attached.vpgc });
    const prefill = host.forward(embeddings, batch.ctx, true);
    expect(run).toHaveBeenCalledTimes(1);
    // Layer inputs 0 and 1 (before the hook) are the hook-free ones; from the hook on they differ.
    expect(Array.from(host.recorded[0].dataSync())).toEqual(Array.from(baseInputs[0]));
    expect(relativeError(host.recorded[1].dataSync(), baseInputs[1])).toBeGreaterThan(1e-4);
    expect(relativeError(prefill.dataSync(), baseline.dataSync())).toBeGreaterThan(1e-4);
    host.clearRecorded();
    run.mockClear();
    const decode = host.forward(embeddings, { ...batch.ctx, isPrefill: false });
    expect(run).not.toHaveBeenCalled();
    expect(Array.from(decode.dataSync())).toEqual(Array.from(baseline.dataSync()));
    expect(attached.vpgc.beforeLayer(0, batch.hiddenTensor, batch.ctx)).toBeNull();
    expect(attached.vpgc.beforeLayer(1, batch.hiddenTensor, { ...batch.ctx, imageFeatures: null })).toBeNull();
    expect(again.hooks.requiresFullSequence).toBe(false);
    expect(again.hooks.namedModules()).toEqual([['model', attached.vpgc]]);
    run.mockRestore();
    tf.dispose([embeddings, baseline, prefill, decode]);
    again.remove();
    attached.vpgc.dispose();
    host.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('analytic gradients of the 5 tensors match float64 central differences', () => {
    const vpg = makeVpg();
    const vpgParams = randomizeVpg(vpg, 7);
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const vpgcParams = randomizeVpgc(vpgc, 8, 0.2);
    const batch = makeBatch(50);
    const weights = randomValues(99, B * L * H);
    const w = tf.tensor3d(Float32Array.from(weights), [B, L, H]);
    const variables = vpgc.trainableVariables();
    expect(variables).toHaveLength(5);
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(vpgc.addResidual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor }), w)) as tf.Scalar,
      variables,
    );
    const all = new Map([...vpgParams, ...vpgcParams]);
    const loss64 = (): number => {
      const out = hook64(all, batch.hidden, batch.features);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * weights[i];
      return s;
    };
    expect(Math.abs(value.dataSync()[0] - loss64()) / Math.abs(loss64())).toBeLessThan(backendTolerance(1e-5));
    for (const [name, parameter] of vpgc.namedParameters()) {
      const reference = all.get(`llama_model.model.${name}`)!;
      const gradient = grads[(parameter.variable.read() as tf.Variable).name];
      // internal layout → reference layout
      const analytic = (parameter.layout === 'linear' ? tf.transpose(gradient) : gradient.clone());
      const analyticData = analytic.dataSync();
      analytic.dispose();
      const numeric = new Float64Array(reference.data.length);
      const step = 1e-5;
      for (let i = 0; i < reference.data.length; i++) {
        const keep = reference.data[i];
        reference.data[i] = keep + step;
        const plus = loss64();
        reference.data[i] = keep - step;
        const minus = loss64();
        reference.data[i] = keep;
        numeric[i] = (plus - minus) / (2 * step);
      }
      expect(relativeError(analyticData, numeric), name).toBeLessThan(backendTolerance(2e-4));
    }
    tf.dispose([value, w, ...Object.values(grads)]);
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('a training step changes only the VPG-C tensors (step 1: only llm_proj, as the zero init implies)', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 9);
    const host = new FakeHost(H, 4, 10, vpg);
    const attached = attachVPGC(host);
    const vpgc = attached.vpgc;
    const batch = makeBatch(60);
    const embeddings = splice(vpg, batch);
    const target = tf.randomNormal([B, L, 10], 0, 1, 'float32', 5);
    const snapshot = (modules: Array<{ namedParameters(): Array<[string, { variable: { read(): tf.Tensor } }]> }>) =>
      modules.flatMap((m) => m.namedParameters().map(([n, p]) => [n, Array.from(p.variable.read().dataSync())] as [string, number[]]));
    const frozenBefore = snapshot(host.modules() as never);
    const optimizer = tf.train.adam(1e-2);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(host.forward(embeddings, batch.ctx), target))) as tf.Scalar);
      // structural freezing: only VPG-C variables are trainable at all
      const names = new Set(vpgc.trainableVariables().map((v) => v.name));
      expect(Object.keys(grads).filter((n) => !names.has(n))).toEqual([]);
      expect(Object.keys(grads).sort()).toEqual([...names].sort());
      optimizer.applyGradients(grads as never);
      tf.dispose([value, ...Object.values(grads)]);
    };
    const values = () => new Map(vpgc.namedParameters().map(([n, p]) => [n, Array.from(p.variable.read().dataSync())]));
    const initial = values();
    step();
    const afterOne = values();
    const changed = (a: Map<string, number[]>, b: Map<string, number[]>) => [...a.keys()].filter((k) => a.get(k)!.some((v, i) => v !== b.get(k)![i])).sort();
    expect(changed(initial, afterOne)).toEqual(['llm_proj.bias', 'llm_proj.weight']);
    step();
    expect(changed(initial, values())).toEqual(['llm_proj.bias', 'llm_proj.weight', 'qformer_proj.bias', 'qformer_proj.weight', 'query_tokens']);
    expect(snapshot(host.modules() as never)).toEqual(frozenBefore);
    optimizer.dispose();
    tf.dispose([embeddings, target]);
    attached.remove();
    vpgc.dispose();
    host.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('dropout: off at inference by default, on with dropoutAtInference (reference) or training', () => {
    const vpg = new (makeVpg().constructor as typeof import('./qformer-vpg.js').QFormerVPG)({
      qformer: { ...qformerShape, hiddenDropoutProb: 0.3, attentionProbsDropoutProb: 0.3 }, numQueryTokens: Nq, llmHiddenSize: H,
    });
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    randomizeVpgc(vpgc, 10);
    const batch = makeBatch(70);
    const inputs = { hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor };
    const a = vpgc.addResidual(inputs);
    const b = vpgc.addResidual(inputs);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    vpgc.dropoutAtInference = true;
    const c = vpgc.addResidual(inputs);
    expect(relativeError(c.dataSync(), a.dataSync())).toBeGreaterThan(1e-5);
    vpgc.dropoutAtInference = false;
    vpgc.training = true;
    const d = vpgc.addResidual(inputs);
    expect(relativeError(d.dataSync(), a.dataSync())).toBeGreaterThan(1e-5);
    tf.dispose([a, b, c, d]);
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it("query tokens: weights loaded into the VPG after the VPGC was built reach VPG-C (the reference's init_query_tokens_value), until VPG-C's own are loaded or trained", () => {
    const vpg = makeVpg(); // random init, as before a BLIP-2 checkpoint is loaded
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const projections = randomizeVpgc(vpgc, 11);
    // randomizeVpgc loaded VPG-C's own queries too: put the VPG's back and follow again with a fresh VPGC
    vpgc.dispose();
    const late = new VPGC({ vpg, updateLayer: 2 });
    const onlyProjections = toTensors(new Map([...projections].filter(([k]) => !k.endsWith('query_tokens'))));
    loadVPGCStateDict(late, onlyProjections, { strict: false });
    expect(late.queryTokensFollowVpg).toBe(true);
    const vpgParams = randomizeVpg(vpg, 12); // the checkpoint load, after construction
    const blip2Queries = Float32Array.from(vpgParams.get('query_tokens')!.data);
    expectClose(late.queryTokensValue, blip2Queries, { rtol: 0, atol: 0, label: 'VPG-C queries after the VPG load' });
    const exported = vpgcStateDict(late);
    expectClose(exported.get('llama_model.model.query_tokens')!, blip2Queries, { rtol: 0, atol: 0, label: 'exported VPG-C queries' });
    disposeStateDict(exported);
    // the same residual as a VPGC built after the load
    const early = new VPGC({ vpg, updateLayer: 2 });
    loadVPGCStateDict(early, onlyProjections, { strict: false });
    const batch = makeBatch(13);
    const inputs = { hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor };
    const a = late.residual(inputs);
    const b = early.residual(inputs);
    expect(relativeError(a.dataSync(), new Float32Array(B * L * H))).toBeGreaterThan(0.1);
    expectClose(a, b.dataSync(), { rtol: 0, atol: 0, label: 'residual, VPGC built before vs after the VPG load' });
    // VPG-C's own queries loaded: they no longer follow a later VPG load
    const own = toTensors(new Map([['llama_model.model.query_tokens', projections.get('llama_model.model.query_tokens')!]]));
    loadVPGCStateDict(late, own, { strict: false });
    expect(late.queryTokensFollowVpg).toBe(false);
    randomizeVpg(vpg, 14);
    expectClose(late.queryTokensValue, Float32Array.from(projections.get('llama_model.model.query_tokens')!.data), { rtol: 0, atol: 0, label: 'own queries kept' });
    // an optimizer step on VPG-C's queries stops the following too (a zero-gradient step included)
    expect(early.queryTokensFollowVpg).toBe(true);
    const optimizer = tf.train.sgd(0.1);
    const q = early.trainableVariables().find((v) => v.name.includes('query_tokens'))!;
    const { value, grads } = tf.variableGrads(() => tf.mul(tf.sum(early.queryTokensValue), 0) as tf.Scalar, [q]);
    optimizer.applyGradients(grads as never);
    expect(early.queryTokensFollowVpg).toBe(false);
    const trained = Array.from(early.queryTokensValue.dataSync());
    randomizeVpg(vpg, 15);
    expect(Array.from(early.queryTokensValue.dataSync())).toEqual(trained);
    optimizer.dispose();
    tf.dispose([a, b, value, ...Object.values(grads)]);
    disposeStateDict(onlyProjections);
    disposeStateDict(own);
    late.dispose();
    early.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('dropoutAtInference covers both Q-Former passes: the VPG\'s first pass (encode_img) and the re-run', () => {
    const QFormerVPG = makeVpg().constructor as typeof import('./qformer-vpg.js').QFormerVPG;
    const vpg = new QFormerVPG({ qformer: { ...qformerShape, hiddenDropoutProb: 0.3, attentionProbsDropoutProb: 0.3 }, numQueryTokens: Nq, llmHiddenSize: H });
    const batch = makeBatch(90);
    const first = () => vpg.forward(batch.featuresTensor);
    const plain = first();
    const again = first();
    expect(Array.from(again.dataSync())).toEqual(Array.from(plain.dataSync()));
    const vpgc = new VPGC({ vpg, updateLayer: 2, dropoutAtInference: true });
    expect(vpg.dropoutAtInference).toBe(true);
    const dropped = first();
    expect(relativeError(dropped.dataSync(), plain.dataSync())).toBeGreaterThan(1e-5);
    vpgc.dropoutAtInference = false;
    expect(vpg.dropoutAtInference).toBe(false);
    const off = first();
    expect(Array.from(off.dataSync())).toEqual(Array.from(plain.dataSync()));
    // attachVPGC's option and a VPGC built without the option: one switch, the VPG's
    const host = new FakeHost(H, 4, 10, vpg);
    const attached = attachVPGC(host, { dropoutAtInference: true });
    expect(vpg.dropoutAtInference).toBe(true);
    const other = new VPGC({ vpg, updateLayer: 1 });
    expect(other.dropoutAtInference).toBe(true);
    expect(() => { other.dropoutAtInference = 'yes' as unknown as boolean; }).toThrow(/dropoutAtInference must be a boolean, got yes/);
    tf.dispose([plain, again, dropped, off]);
    attached.remove();
    attached.vpgc.dispose();
    other.dispose();
    vpgc.dispose();
    host.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('places the residual from the host\'s imageTables (no span walk) exactly as from the spans; bad tables are clear errors', () => {
    const tables = imageTablesFromSpans(imageSpans);
    const fromSpans = imageSpanScatterIndex(B, L, 3, Nq, imageSpans, imageToSample);
    expect(Array.from(imageTablesScatterIndex(B, L, 3, Nq, tables, imageToSample))).toEqual(Array.from(fromSpans));
    const vpg = makeVpg();
    randomizeVpg(vpg, 3);
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    randomizeVpgc(vpgc, 4);
    const batch = makeBatch(31);
    const inputs = { hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor };
    const start = tf.memory().numTensors;
    // The tables alone place the residual: the spans are not read when tables are given.
    const [a, b] = [vpgc.residual(inputs), vpgc.residual({ ...inputs, imageSpans: [[], []], imageTables: tables })];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([a, b]);
    const rows = tables.visualRows;
    const bad = (visualRows: number[][], visualPositions = tables.visualPositions) => () =>
      vpgc.residual({ ...inputs, imageTables: { ...tables, visualRows, visualPositions } });
    expect(bad([rows[0]])).toThrow(/imageTables.visualRows and visualPositions must have one list per sample \(2\)/);
    expect(bad([rows[0].slice(0, -1), rows[1]], [tables.visualPositions[0].slice(0, -1), tables.visualPositions[1]]))
      .toThrow(/imageTables place 11 of the 12 image-query rows \(images 1 incomplete; each image span must hold 4 tokens\)/);
    expect(bad([[...rows[0].slice(0, -1), 0], rows[1]])).toThrow(/visualRows\[0\]\[7\] must be an unused row of the 3·4 image-query rows/);
    expect(bad([rows[1], rows[0]], [tables.visualPositions[1], tables.visualPositions[0]])).toThrow(/image 2 is in imageTables sample 0 but imageToSample says sample 1/);
    expect(bad(rows, [tables.visualPositions[0].map((p) => p + 10), tables.visualPositions[1]])).toThrow(/image 1 token at 17 is outside the sequence \[0, 16\)/);
    expect(bad(rows, [tables.visualPositions[0].map(() => 2), tables.visualPositions[1]])).toThrow(/image spans overlap at sample 0, position 2/);
    expect(tf.memory().numTensors).toBe(start);
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('rejects bad spans, indices and shapes with clear errors, leaking nothing', () => {
    const vpg = makeVpg();
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const batch = makeBatch(80);
    const inputs = { hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor };
    const host = new FakeHost(H, 4, 10, vpg);
    const start = tf.memory().numTensors;
    expect(() => vpgc.addResidual({ ...inputs, lastPromptIndex: [13] })).toThrow(/lastPromptIndex must have one entry per sample \(2\), got 1/);
    expect(() => vpgc.addResidual({ ...inputs, lastPromptIndex: [13, 16] })).toThrow(/lastPromptIndex\[1\] must be in \[0, 16\), got 16/);
    expect(() => vpgc.addResidual({ ...inputs, imageSpans: [[{ imageIndex: 0, start: 2, length: 3 }], []], imageToSample: [0, 0, 1] })).toThrow(/span length must equal the number of queries 4, got 3/);
    expect(() => vpgc.addResidual({ ...inputs, imageSpans: [[{ imageIndex: 0, start: 14, length: 4 }], []] })).toThrow(/span \[14, 18\) is outside the sequence \[0, 16\)/);
    expect(() => vpgc.addResidual({ ...inputs, imageSpans: [[{ imageIndex: 2, start: 0, length: 4 }], []] })).toThrow(/image 2 is in imageSpans\[0\] but imageToSample says sample 1/);
    expect(() => vpgc.addResidual({ ...inputs, imageSpans: [[{ imageIndex: 0, start: 0, length: 4 }, { imageIndex: 1, start: 2, length: 4 }], []] })).toThrow(/overlap/);
    expect(() => vpgc.addResidual({ ...inputs, imageToSample: [0, 1] })).toThrow(/imageToSample must have length numImages = 3, got 2/);
    expect(() => vpgc.addResidual({ ...inputs, hidden: tf.zeros([B, L, 5]) as tf.Tensor3D })).toThrow(/hidden must be \[B, L, 12\], got \[2,16,5\]/);
    expect(() => new VPGC({ vpg, updateLayer: -1 })).toThrow(/updateLayer must be a non-negative integer, got -1/);
    expect(() => attachVPGC(host, { updateLayer: 4 })).toThrow(/updateLayer must be in \[0, 4\), got 4/);
    expect(tf.memory().numTensors).toBe(start + 1); // the tf.zeros above
    expect(imageSpanScatterIndex(1, 6, 1, 2, [[{ imageIndex: 0, start: 3, length: 2 }]], [0])).toEqual(Int32Array.from([2, 2, 2, 0, 1, 2]));
    host.dispose();
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });
});
