/**
 * HF LLaMA / Qwen2 decoders against HF's own modeling code: the checkpoints and expected logits under
 * `__fixtures__/` are written by `scripts/reference-fixtures/hf_decoders.py` (Bunny's vendored
 * `modeling_qwen2.py` / `modeling_llama.py` in float64), loaded here with `loadHFCausalLM`.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, writeSafetensorsFile, StateDictError, Linear, type DecoderHooks, assertModuleHost, type ModuleHost } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { HFCausalLM, disposeHFCache, loadHFCausalLM, resolveHFDecoderConfig, hfRotaryInvFreq } from './index.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`./__fixtures__/${name}`, import.meta.url));
const FIXTURES = ['qwen2', 'llama-linear', 'llama-dynamic', 'llama3'] as const;

async function expected(name: string): Promise<Map<string, tf.Tensor>> {
  return (await readSafetensorsFile(join(fixtureDir(name), 'expected.safetensors'))).tensors;
}

const rows = (t: tf.Tensor) => t.arraySync() as number[][];

/** The `[B, L, V]` logits rows where `mask` is 1, flattened (padding rows are not HF's, see causal-lm.ts). */
function realRows(logits: tf.Tensor, mask: number[][]): number[] {
  const values = logits.arraySync() as number[][][];
  return mask.flatMap((row, b) => row.flatMap((m, t) => (m ? values[b]![t]! : [])));
}

describe('HFCausalLM against HF modeling_llama / modeling_qwen2 (float64 fixtures)', () => {
  for (const name of FIXTURES) {
    it(`${name}: left-padded ids, a cached decode step, right-padded inputsEmbeds, explicit positions`, async () => {
      const model = await loadHFCausalLM(fixtureDir(name));
      const e = await expected(name);
      const mask = rows(e.get('inputs.attention_mask')!);
      const before = tf.memory().numTensors;
      // left padding, HF generate's positions, and the prefill cache
      const prefill = model.forward({ inputIds: e.get('inputs.input_ids') as tf.Tensor2D, attentionMask: mask, useCache: true });
      expectClose(realRows(prefill.logits, mask), realRows(e.get('expected.logits')!, mask), { label: `${name} logits` });
      // one decode step from the cache = HF's last row of the L + 1 forward. Dynamic NTK: the cached keys keep
      // the rotation of the shorter prefill (as in HF's cache), so the step is checked as a full forward.
      const nextIds = rows(e.get('inputs.next_ids')!);
      const step = name === 'llama-dynamic'
        ? model.forward({ inputIds: rows(e.get('inputs.input_ids')!).map((r, b) => [...r, ...nextIds[b]!]), attentionMask: mask.map((r) => [...r, 1]), useCache: true })
        : model.forward({ inputIds: nextIds, cache: prefill.cache, useCache: true });
      const stepLogits = step.logits.slice([0, step.logits.shape[1] - 1, 0], [-1, 1, -1]);
      expectClose(stepLogits, e.get('expected.next_logits')!, { label: `${name} decode step` });
      expect(step.cache!.layers[0]!.keys.shape).toEqual([2, model.hfConfig.numKeyValueHeads, 8, model.hfConfig.headDim]);
      stepLogits.dispose();
      // inputsEmbeds with right padding
      const embedsMask = rows(e.get('inputs.embeds_mask')!);
      const embeds = model.forward({ inputsEmbeds: e.get('inputs.inputs_embeds') as tf.Tensor3D, attentionMask: embedsMask });
      expectClose(realRows(embeds.logits, embedsMask), realRows(e.get('expected.embeds_logits')!, embedsMask), { label: `${name} inputsEmbeds` });
      // padding inside a sequence, positions counting through it
      const innerMask = rows(e.get('inputs.inner_mask')!);
      const inner = model.forward({
        inputIds: e.get('inputs.inner_input_ids') as tf.Tensor2D, attentionMask: innerMask, positionIds: e.get('inputs.inner_position_ids') as tf.Tensor2D,
      });
      expectClose(realRows(inner.logits, innerMask), realRows(e.get('expected.inner_logits')!, innerMask), { label: `${name} explicit positions` });
      for (const t of [prefill.logits, step.logits, embeds.logits, inner.logits]) t.dispose();
      disposeHFCache(prefill.cache);
      disposeHFCache(step.cache);
      expect(tf.memory().numTensors).toBe(before);
      for (const t of e.values()) t.dispose();
      model.dispose();
    });
  }

  it('the fixtures cover what they claim: GQA, tied and untied heads, biases, inv_freq buffers, every llama3 branch', async () => {
    const header = (dir: string) => JSON.parse(readFileSync(join(fixtureDir(dir), 'config.json'), 'utf8'));
    const qwen2 = await loadHFCausalLM(fixtureDir('qwen2')); // sharded: model.safetensors.index.json
    expect(qwen2.baseModelShape()).toMatchObject({ model_type: 'qwen2', num_attention_heads: 4, num_key_value_heads: 2 });
    const names = qwen2.namedParameters().map(([n]) => n);
    expect(names).toContain('model.layers.0.self_attn.q_proj.bias');
    expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
    expect(names).toContain('lm_head.weight');
    qwen2.dispose();
    const linear = await loadHFCausalLM(fixtureDir('llama-linear'));
    expect(linear.lmHead).toBeNull();
    expect(linear.namedParameters().map(([n]) => n)).not.toContain('model.layers.0.self_attn.q_proj.bias');
    linear.dispose();
    const file = await readSafetensorsFile(join(fixtureDir('llama-linear'), 'model.safetensors'));
    expect([...file.tensors.keys()]).toContain('model.layers.1.self_attn.rotary_emb.inv_freq');
    for (const t of file.tensors.values()) t.dispose();
    expect(header('llama-dynamic').attention_bias).toBe(true);
    // llama3: head_dim 8, θ 10000 → wavelengths 2π·10^(2i/8)·… = 6.3 (kept), 62.8 (interpolated), 628, 6283 (÷ 8)
    const c = resolveHFDecoderConfig(header('llama3'));
    const f = hfRotaryInvFreq(c);
    const base = [1, 0.1, 0.01, 0.001];
    expect(f[0]).toBeCloseTo(base[0]!, 7);
    expect(f[1]! / base[1]!).toBeGreaterThan(1 / 8);
    expect(f[1]! / base[1]!).toBeLessThan(1);
    expect(f[2]! / base[2]!).toBeCloseTo(1 / 8, 6);
    expect(f[3]! / base[3]!).toBeCloseTo(1 / 8, 6);
  });
});

describe('HFCausalLM decoding', () => {
  it('a KV-cached greedy generate equals argmax over full forwards (left and right padding)', async () => {
    const model = await loadHFCausalLM(fixtureDir('qwen2'));
    const ids = [[0, 0, 5, 9, 13], [4, 8, 15, 16, 0]];
    const mask = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]]; // sample 0 left-padded, sample 1 right-padded
    const before = tf.memory().numTensors;
    const generated = model.generate(ids, { attentionMask: mask, maxNewTokens: 4 });
    expect(tf.memory().numTensors).toBe(before);
    // independent: full forwards over the growing sequence, argmax at each sample's last real token
    for (let b = 0; b < 2; b++) {
      const seq = ids[b]!.filter((_, t) => mask[b]![t]);
      for (let step = 0; step < 4; step++) {
        const logits = model.forward({ inputIds: [seq] }).logits;
        const last = tf.tidy(() => tf.argMax(tf.squeeze(logits.slice([0, seq.length - 1, 0], [1, 1, -1]))).dataSync()[0]!);
        logits.dispose();
        expect(generated[b]![step]).toBe(last);
        seq.push(last);
      }
    }
    model.dispose();
  });

  it('logitsPositions: each sample\'s logits at its one position, equal to the full forward\'s row there; validated', async () => {
    const model = await loadHFCausalLM(fixtureDir('qwen2'));
    const ids = [[0, 0, 5, 9, 13], [4, 8, 15, 16, 0]];
    const mask = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]];
    const full = model.forward({ inputIds: ids, attentionMask: mask });
    const before = tf.memory().numTensors;
    const kept = model.forward({ inputIds: ids, attentionMask: mask, logitsPositions: [4, 3] });
    expect(kept.logits.shape).toEqual([2, 1, 64]);
    const rowsOfFull = full.logits.arraySync() as number[][][];
    expectClose(kept.logits, [[rowsOfFull[0]![4]!], [rowsOfFull[1]![3]!]]);
    kept.logits.dispose();
    full.logits.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
    expect(() => model.forward({ inputIds: ids, logitsPositions: [4] })).toThrow(/logitsPositions must be 2 integer positions in \[0, 5\), got/);
    expect(() => model.forward({ inputIds: ids, logitsPositions: [4, 5] })).toThrow(/logitsPositions must be 2 integer positions/);
    model.dispose();
  });

  it('generate stops a sample at eos and pads it; validates its options', async () => {
    const model = await loadHFCausalLM(fixtureDir('llama-linear'));
    const prompts = [[3, 7, 11], [5, 9, 2]];
    const free = model.generate(prompts, { maxNewTokens: 4 });
    const eos = free[0]![0]!;
    const stopped = model.generate(prompts, { maxNewTokens: 4, eosTokenId: [eos] });
    expect(stopped[0]).toEqual([eos]);
    const cut = free[1]!.indexOf(eos);
    expect(stopped[1]).toEqual(cut < 0 ? free[1] : free[1]!.slice(0, cut + 1));
    expect(() => model.generate([[3]], { maxNewTokens: 0 })).toThrow(/maxNewTokens must be a positive integer, got 0/);
    expect(() => model.generate([[3, 99]], { maxNewTokens: 1 })).toThrow(/inputIds\[0\]\[1\] must be a token id in \[0, 64\), got 99/);
    model.dispose();
  });

  it('decoding token by token through the cache equals one full forward', async () => {
    const model = await loadHFCausalLM(fixtureDir('llama3'));
    const ids = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]];
    const full = model.forward({ inputIds: ids });
    let cache = null;
    const steps: tf.Tensor[] = [];
    for (let t = 0; t < 6; t++) {
      const r = model.forward({ inputIds: ids.map((row) => [row[t]!]), cache, useCache: true });
      disposeHFCache(cache);
      cache = r.cache;
      steps.push(r.logits);
    }
    const stepped = tf.concat(steps, 1);
    expectClose(stepped, full.logits);
    tf.dispose([full.logits, stepped, ...steps]);
    disposeHFCache(cache);
    model.dispose();
  });
});

describe('HFCausalLM hooks (ModuleHost)', () => {
  it('beforeLayer / afterAttention run per layer with grouped-head probabilities; namedModules join the state dict', async () => {
    const model = await loadHFCausalLM(fixtureDir('qwen2'));
    const ids = [[0, 3, 5, 7], [2, 4, 6, 8]];
    const mask = [[0, 1, 1, 1], [1, 1, 1, 1]];
    const plain = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    const seen: string[] = [];
    const probeModule = new Linear({ inFeatures: 2, outFeatures: 2 });
    const probe: DecoderHooks = {
      attentionProbsLayers: [1],
      beforeLayer: (layer, hidden, ctx) => {
        seen.push(`before ${layer} [${hidden.shape}] prefill=${ctx.isPrefill}`);
        return null;
      },
      afterAttention: (layer, args) => {
        seen.push(`after ${layer} probs=${args.attentionProbs ? `[${args.attentionProbs.shape}]` : 'null'}`);
        if (args.attentionProbs) {
          const sums = tf.sum(args.attentionProbs, -1).arraySync() as number[][][];
          expect(sums[0]![0]![0]).toBe(0); // sample 0's padding query sees no key
          expectClose(sums[0]!.map((h) => h.slice(1)), 1);
          expectClose(sums[1]!, 1);
        }
        return null;
      },
      namedModules: () => [['model.probe', probeModule]],
    };
    const handle = model.addHooks(probe);
    expect(model.namedParameters().map(([n]) => n)).toContain('model.probe.weight');
    const hooked = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    expect(seen).toEqual(['before 0 [2,4,32] prefill=true', 'after 0 probs=null', 'before 1 [2,4,32] prefill=true', 'after 1 probs=[2,4,4,4]']);
    expectClose(hooked, plain, { rtol: 0, atol: 0 });
    handle.remove();
    expect(model.namedParameters().map(([n]) => n)).not.toContain('model.probe.weight');
    // a replacing hook changes the logits at and after its layer's input
    const shift = model.addHooks({ beforeLayer: (layer, hidden) => (layer === 1 ? (tf.add(hidden, 0.5) as tf.Tensor3D) : null) });
    const shifted = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    expect(tf.max(tf.abs(tf.sub(shifted, plain))).dataSync()[0]).toBeGreaterThan(1e-3);
    shift.remove();
    expect(() => model.addHooks({ beforeLayer: () => tf.zeros([1, 1, 1]) as tf.Tensor3D }) && model.forward({ inputIds: ids }))
      .toThrow(/beforeLayer hook must return \[2,4,32\], got \[1,1,1\]/);
    tf.dispose([plain, hooked, shifted]);
    probeModule.dispose();
    model.dispose();
  });

  it('is a ModuleHost; generate re-runs full sequences for a requiresFullSequence hook, with the same tokens', async () => {
    const model = await loadHFCausalLM(fixtureDir('llama3'));
    assertModuleHost('test', model);
    const host: ModuleHost = model;
    expect(host.baseModelShape()).toMatchObject({ model_type: 'llama', num_key_value_heads: 2, rope_theta: 10000 });
    const prompts = [[0, 4, 9], [3, 1, 2]];
    const attentionMask = [[0, 1, 1], [1, 1, 1]];
    const cached = model.generate(prompts, { attentionMask, maxNewTokens: 3 });
    const prefillFlags: boolean[] = [];
    const handle = model.addHooks({ requiresFullSequence: true, prepare: (ctx) => void prefillFlags.push(ctx.isPrefill) });
    const full = model.generate(prompts, { attentionMask, maxNewTokens: 3 });
    handle.remove();
    expect(full).toEqual(cached);
    expect(prefillFlags).toEqual([true, true, true]); // three full forwards, no cached steps
    model.dispose();
  });

  it('a forward keeps the tensor count flat', async () => {
    const model = await loadHFCausalLM(fixtureDir('llama-dynamic'));
    expectNoLeaks(() => model.forward({ inputIds: [[1, 2, 3]], attentionMask: [[1, 1, 1]] }));
    model.dispose();
  });
});

describe('HF decoder config and loading errors', () => {
  const base = { model_type: 'llama', vocab_size: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2 };
  it('names the key, the expected and the actual value', () => {
    expect(() => resolveHFDecoderConfig({ ...base, model_type: 'gpt2' })).toThrow(/model_type must be one of 'llama', 'qwen2', got the string "gpt2"/);
    expect(() => resolveHFDecoderConfig({ ...base, num_key_value_heads: 3 })).toThrow(/num_key_value_heads must be a divisor of num_attention_heads \(2\), got 3/);
    expect(() => resolveHFDecoderConfig({ ...base, rope_scaling: { type: 'yarn', factor: 2 } })).toThrow(/rope_scaling.type must be one of/);
    expect(() => resolveHFDecoderConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1 } }))
      .toThrow(/rope_scaling.high_freq_factor must be a number > low_freq_factor \(4\), got 1/);
    expect(() => resolveHFDecoderConfig({ ...base, hidden_act: 'gelu' })).toThrow(/hidden_act must be 'silu', got the string "gelu"/);
    expect(resolveHFDecoderConfig({ ...base, model_type: 'qwen2' })).toMatchObject({ qkvBias: true, outputBias: false, numKeyValueHeads: 2, maxPositionEmbeddings: 32768 });
    expect(resolveHFDecoderConfig({ ...base, attention_bias: true })).toMatchObject({ qkvBias: true, outputBias: true, maxPositionEmbeddings: 2048 });
  });

  it('forward rejects bad inputs clearly', async () => {
    const model = new HFCausalLM({ config: base });
    expect(() => model.forward({})).toThrow(/give exactly one of inputIds and inputsEmbeds, got neither/);
    expect(() => model.forward({ inputIds: [[1]], attentionMask: [[2]] })).toThrow(/attentionMask\[0\]\[0\] must be 0 or 1, got 2/);
    expect(() => model.forward({ inputsEmbeds: tf.zeros([1, 2, 4]) as tf.Tensor3D })).toThrow(/inputsEmbeds must be \[B, L, 8\], got \[1,2,4\]/);
    model.dispose();
  });

  it('a strict load rejects an unknown tensor and assigns nothing; inv_freq buffers are accepted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hf-decoder-'));
    try {
      cpSync(fixtureDir('llama-linear'), dir, { recursive: true });
      const { tensors } = await readSafetensorsFile(join(dir, 'model.safetensors'));
      tensors.set('model.layers.0.self_attn.extra', tf.zeros([2]));
      await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
      for (const t of tensors.values()) t.dispose();
      const before = tf.memory().numTensors;
      await expect(loadHFCausalLM(dir)).rejects.toThrow(StateDictError);
      await expect(loadHFCausalLM(dir)).rejects.toThrow(/model.layers.0.self_attn.extra/);
      expect(tf.memory().numTensors).toBe(before);
      const loose = await loadHFCausalLM(dir, { strict: false });
      loose.dispose();
      writeFileSync(join(dir, 'config.json'), '{"model_type": "llama",');
      await expect(loadHFCausalLM(dir)).rejects.toThrow(/config.json" is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
