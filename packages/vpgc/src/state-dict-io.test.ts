import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { loadSafetensors, disposeStateDict, saveSafetensors, StateDictError, type StateDict } from '@mllm/core';
import { VPGC, loadVPGStateDict, loadVPGCStateDict, saveAdapter, loadAdapter, vpgcStateDict, QFormerVPG } from './index.js';
import { vpg64, vpgcHook64, f64, type ParamsF64 } from './test-support/float64-reference.js';
import { backendTolerance, useTestBackend } from './test-support/backend.js';
import { paramsF64, randomParams, relativeError, toTensors } from './test-support/params.js';
import {
  B, H, L, Nq, Nv, imageStart, imageToSample, lastPromptIndex, makeBatch, makeVpg, qformerShape, randomizeVpg, randomizeVpgc,
} from './test-support/fixture.js';

useTestBackend();

/** A safetensors file written by hand (F32, little-endian), independent of any library writer. */
function writeSafetensors(params: ParamsF64, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const names = [...params.keys()];
  for (const name of names) {
    const value = params.get(name)!;
    header[name] = { dtype: 'F32', shape: value.shape, data_offsets: [offset, offset + 4 * value.data.length] };
    offset += 4 * value.data.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const name of names) for (const v of params.get(name)!.data) {
    view.setFloat32(position, v, true);
    position += 4;
  }
  return out;
}

/** Every VPG / VPG-C key with its reference shape, plus text-side and LLM keys a real checkpoint carries. */
function referenceCheckpoint(seed: number): { all: ParamsF64; used: ParamsF64 } {
  const vpg = makeVpg();
  const vpgc = new VPGC({ vpg, updateLayer: 2 });
  const shapes: Array<[string, number[]]> = [
    ...[...paramsF64(vpg)].map(([n, v]) => [n, v.shape] as [string, number[]]),
    ...[...paramsF64(vpgc, 'llama_model.model.')].map(([n, v]) => [n, v.shape] as [string, number[]]),
  ];
  vpgc.dispose();
  vpg.dispose();
  const used = randomParams(shapes, seed);
  const extra = randomParams([
    ['Qformer.bert.embeddings.word_embeddings.weight', [30, 8]],
    ['Qformer.bert.embeddings.position_embeddings.weight', [16, 8]],
    ['Qformer.bert.embeddings.position_ids', [1, 16]],
    ['Qformer.bert.encoder.layer.0.intermediate.dense.weight', [16, 8]],
    ['Qformer.bert.encoder.layer.0.output.dense.weight', [8, 16]],
    ['Qformer.bert.encoder.layer.1.output.LayerNorm.bias', [8]],
    ['Qformer.cls.predictions.bias', [30]],
    ['llama_model.model.layers.0.self_attn.q_proj.weight', [H, H]],
    ['llama_model.model.embed_tokens.weight', [20, H]],
    ['visual_encoder.cls_token', [1, 1, 6]],
  ], seed + 1);
  return { all: new Map([...used, ...extra]), used };
}

describe('reference checkpoints and adapters', () => {
  it('a safetensors file in the Cheetah/BLIP-2 key layout loads; VPG and hook outputs match float64 within 1e-5 relative', () => {
    const { all, used } = referenceCheckpoint(21);
    const bytes = writeSafetensors(all);
    const { tensors } = loadSafetensors(bytes);
    const vpg = makeVpg();
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    const vpgResult = loadVPGStateDict(vpg, tensors);
    const vpgcResult = loadVPGCStateDict(vpgc, tensors);
    expect(vpgResult.loadedKeys.length).toBe(vpg.namedParameters().length);
    expect(vpgcResult.loadedKeys.sort()).toEqual([...used.keys()].filter((k) => k.startsWith('llama_model.model.')).sort());
    disposeStateDict(tensors);
    const batch = makeBatch(22);
    const start = tf.memory().numTensors;
    const tokens = vpg.forward(batch.featuresTensor);
    expect(tf.memory().numTensors).toBe(start + 1);
    const out = vpgc.addResidual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor });
    const Dv = qformerShape.encoderWidth;
    const images = [0, 1, 2].map((k) => batch.features.slice(k * Nv * Dv, (k + 1) * Nv * Dv));
    const expectedTokens = images.flatMap((x) => Array.from(vpg64(used, qformerShape, x, Nv)));
    expect(relativeError(tokens.dataSync(), expectedTokens)).toBeLessThan(backendTolerance(1e-5));
    const expected = vpgcHook64(used, qformerShape, { hidden: batch.hidden, B, L, H, lastPromptIndex, images, Nv, imageToSample, imageStart });
    expect(relativeError(out.dataSync(), expected)).toBeLessThan(backendTolerance(1e-5));
    tf.dispose([tokens, out]);
    vpgc.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('reads llama_model.model.Qformer.* duplicates as Qformer.*; strict errors name the missing keys; nothing is assigned on error', () => {
    const { used } = referenceCheckpoint(23);
    const aliased = new Map([...used].map(([k, v]) => [k.startsWith('Qformer.') ? `llama_model.model.${k}` : k, v]));
    const vpg = makeVpg();
    const tensors = toTensors(aliased);
    expect(loadVPGStateDict(vpg, tensors).loadedKeys).toContain('Qformer.bert.embeddings.LayerNorm.weight');
    const reloaded = paramsF64(vpg);
    expect(Array.from(reloaded.get('Qformer.bert.encoder.layer.0.crossattention.self.key.weight')!.data))
      .toEqual(Array.from(used.get('Qformer.bert.encoder.layer.0.crossattention.self.key.weight')!.data));
    disposeStateDict(tensors);
    // A BLIP-2 checkpoint has no llama_proj: strict reports it, strict:false loads the rest.
    const blip2 = new Map([...used].filter(([k]) => !k.startsWith('llama_proj.') && !k.startsWith('llama_model.')));
    const fresh = makeVpg();
    const before = paramsF64(fresh);
    const blipTensors = toTensors(blip2);
    expect(() => loadVPGStateDict(fresh, blipTensors)).toThrow(StateDictError);
    expect(() => loadVPGStateDict(fresh, blipTensors)).toThrow(/missing keys: llama_proj.weight, llama_proj.bias/);
    expect(paramsF64(fresh)).toEqual(before);
    expect(loadVPGStateDict(fresh, blipTensors, { strict: false }).missingKeys).toEqual(['llama_proj.weight', 'llama_proj.bias']);
    const wrong = toTensors(new Map([['llama_model.model.query_tokens', f64([1, Nq, 7], new Float64Array(Nq * 7))]]));
    const vpgc = new VPGC({ vpg: fresh, updateLayer: 1 });
    expect(() => loadVPGCStateDict(vpgc, wrong, { strict: false })).toThrow(/size mismatch for llama_model.model.query_tokens: expected \[1,4,8\]/);
    disposeStateDict(blipTensors);
    disposeStateDict(wrong);
    vpgc.dispose();
    vpg.dispose();
    fresh.dispose();
  });

  it('saveAdapter / loadAdapter round-trip the 5 tensors and the config; mismatched configs are rejected', () => {
    const vpg = makeVpg();
    const vpgc = new VPGC({ vpg, updateLayer: 3, dropoutAtInference: true });
    randomizeVpgc(vpgc, 24);
    const start = tf.memory().numTensors;
    const bytes = saveAdapter(vpgc);
    expect(tf.memory().numTensors).toBe(start);
    const { tensors, metadata } = loadSafetensors(bytes);
    expect([...tensors.keys()].sort()).toEqual([
      'llama_model.model.llm_proj.bias', 'llama_model.model.llm_proj.weight', 'llama_model.model.qformer_proj.bias',
      'llama_model.model.qformer_proj.weight', 'llama_model.model.query_tokens',
    ]);
    expect(JSON.parse(metadata!.vpgc_config)).toEqual({
      format: 'mllm-vpgc', version: 1, updateLayer: 3, llmHiddenSize: H, qformerWidth: 8, numQueryTokens: Nq, dropoutAtInference: true,
    });
    disposeStateDict(tensors);
    const other = new VPGC({ vpg, updateLayer: 3 });
    const afterCreate = tf.memory().numTensors;
    const config = loadAdapter(other, bytes);
    expect(tf.memory().numTensors).toBe(afterCreate);
    expect(config.dropoutAtInference).toBe(true);
    expect(other.dropoutAtInference).toBe(true);
    expect(paramsF64(other, 'x.')).toEqual(paramsF64(vpgc, 'x.'));
    const wrongLayer = new VPGC({ vpg, updateLayer: 2 });
    expect(() => loadAdapter(wrongLayer, bytes)).toThrow(/updateLayer of the adapter is 3, this VPGC has 2/);
    const wide = new QFormerVPG({ qformer: qformerShape, numQueryTokens: Nq, llmHiddenSize: H + 2 });
    const wideVpgc = new VPGC({ vpg: wide, updateLayer: 3 });
    expect(() => loadAdapter(wideVpgc, bytes)).toThrow(/llmHiddenSize of the adapter is 12, this VPGC has 14/);
    const dict = vpgcStateDict(vpgc);
    expect(dict.size).toBe(5);
    disposeStateDict(dict);
    for (const m of [vpgc, other, wrongLayer, wideVpgc, wide, vpg]) m.dispose();
  });
});

/** The dict as safetensors bytes, read back as a fresh dict (the first one is disposed). */
function throughFile(dict: StateDict): StateDict {
  const bytes = saveSafetensors(dict);
  disposeStateDict(dict);
  return loadSafetensors(bytes).tensors;
}

describe('what stateDict writes, the loaders read back', () => {
  it('QFormerVPG: vpg.stateDict() -> file -> a fresh VPG (loadStateDict or loadVPGStateDict) -> identical tokens', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 31);
    const batch = makeBatch(32);
    const expected = vpg.forward(batch.featuresTensor);
    const tensors = throughFile(vpg.stateDict());
    for (const load of [
      (m: QFormerVPG) => m.loadStateDict(Object.fromEntries(tensors)),
      (m: QFormerVPG) => loadVPGStateDict(m, Object.fromEntries(tensors)),
    ]) {
      const fresh = makeVpg();
      load(fresh);
      const out = fresh.forward(batch.featuresTensor);
      expect(Array.from(out.dataSync())).toEqual(Array.from(expected.dataSync()));
      out.dispose();
      fresh.dispose();
    }
    disposeStateDict(tensors);
    expected.dispose();
    vpg.dispose();
    batch.dispose();
  });

  it('VPGC: stateDict() / vpgcStateDict() -> file -> a fresh VPGC -> identical residual; the other prefix is named', () => {
    const vpg = makeVpg();
    randomizeVpg(vpg, 33);
    const vpgc = new VPGC({ vpg, updateLayer: 2 });
    randomizeVpgc(vpgc, 34);
    const batch = makeBatch(35);
    const residual = (m: VPGC) => m.addResidual({ hidden: batch.hiddenTensor, ...batch.ctx, imageFeatures: batch.featuresTensor });
    const expected = residual(vpgc);
    const plain = throughFile(vpgc.stateDict());
    const reference = throughFile(vpgcStateDict(vpgc));
    expect([...reference.keys()].every((k) => k.startsWith('llama_model.model.'))).toBe(true);
    const loads: Array<(m: VPGC) => unknown> = [
      (m) => m.loadStateDict(plain),
      (m) => m.loadStateDict([...reference], { prefix: 'llama_model.model.' }),
      (m) => loadVPGCStateDict(m, reference),
      (m) => loadVPGCStateDict(m, Object.fromEntries(plain), { prefix: '' }),
    ];
    for (const load of loads) {
      const fresh = new VPGC({ vpg, updateLayer: 2 });
      const before = residual(fresh);
      expect(Array.from(before.dataSync())).not.toEqual(Array.from(expected.dataSync()));
      load(fresh);
      const out = residual(fresh);
      expect(Array.from(out.dataSync())).toEqual(Array.from(expected.dataSync()));
      tf.dispose([before, out]);
      fresh.dispose();
    }
    const fresh = new VPGC({ vpg, updateLayer: 2 });
    expect(() => loadVPGCStateDict(fresh, plain)).toThrow(StateDictError);
    expect(() => loadVPGCStateDict(fresh, plain)).toThrow("all 5 missing keys appear without a prefix: pass { prefix: '' }");
    expect(() => fresh.loadStateDict(reference)).toThrow("pass { prefix: 'llama_model.model.' }");
    expect(() => loadVPGCStateDict(fresh, plain, { strict: false })).not.toThrow();
    disposeStateDict(plain);
    disposeStateDict(reference);
    expected.dispose();
    for (const m of [fresh, vpgc, vpg]) m.dispose();
    batch.dispose();
  });
});
