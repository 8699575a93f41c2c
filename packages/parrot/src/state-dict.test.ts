import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { StateDictError, loadSafetensors, saveSafetensors } from '@mllm/core';
import { PARROT_CHECKPOINT_PREFIX, ParrotMoE } from './parrot-moe.js';
import { parrotMoE64, type Float64Weights, type Matrix } from './testing/float64-moe.js';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { batchTensors, maxAbs, randomBatch, randomWeights, readWeights, weightsToStateDict } from './testing/fixtures.js';

const D = 16;
const I = 24;
const E = 3;
const N = 5;

function newMoE(): ParrotMoE {
  return new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E });
}

describe('ParrotMoE state dict (reference names and layouts)', () => {
  it('exposes exactly the reference keys and PyTorch shapes', () => {
    const moe = newMoE();
    const dict = moe.stateDict();
    const expected = new Map<string, number[]>([['gate.weight', [E, D]]]);
    for (let i = 0; i < E; i++) {
      expected.set(`experts.${i}.gate_proj.weight`, [I, D]);
      expected.set(`experts.${i}.up_proj.weight`, [I, D]);
      expected.set(`experts.${i}.down_proj.weight`, [D, I]);
    }
    expect([...dict.keys()]).toEqual([...expected.keys()]);
    for (const [k, shape] of expected) expect(dict.get(k)!.shape).toEqual(shape);
    expect(moe.parameterCount()).toBe(E * D + 3 * E * I * D);
    const prefixed = moe.stateDict(PARROT_CHECKPOINT_PREFIX);
    expect([...prefixed.keys()][0]).toBe('model.moe_model.gate.weight');
    tf.dispose([...dict.values(), ...prefixed.values()]);
    moe.dispose();
  });

  it('round-trips: load(stateDict()) reproduces the weights exactly', () => {
    const w = randomWeights(2, D, I, E);
    const dict = weightsToStateDict(w);
    const moe = newMoE();
    moe.loadStateDict(dict);
    expect(readWeights(moe)).toEqual(w);
    tf.dispose([...dict.values()]);
    moe.dispose();
  });

  it('strict loading reports missing, unexpected and mis-shaped keys together and assigns nothing', () => {
    const moe = newMoE();
    const before = readWeights(moe);
    const dict = weightsToStateDict(randomWeights(3, D, I, E), PARROT_CHECKPOINT_PREFIX);
    dict.get(`${PARROT_CHECKPOINT_PREFIX}experts.2.up_proj.weight`)!.dispose();
    dict.delete(`${PARROT_CHECKPOINT_PREFIX}experts.2.up_proj.weight`);
    dict.set(`${PARROT_CHECKPOINT_PREFIX}gate.bias`, tf.zeros([E]));
    dict.get(`${PARROT_CHECKPOINT_PREFIX}experts.0.gate_proj.weight`)!.dispose();
    dict.set(`${PARROT_CHECKPOINT_PREFIX}experts.0.gate_proj.weight`, tf.zeros([D, I])); // [in, out]: wrong layout
    dict.set('model.embed_tokens.weight', tf.zeros([4, D])); // outside the prefix: ignored
    let error: unknown;
    try {
      moe.loadStateDict(dict, { prefix: PARROT_CHECKPOINT_PREFIX });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StateDictError);
    const message = String(error);
    expect(message).toMatch(/missing keys: model\.moe_model\.experts\.2\.up_proj\.weight/);
    expect(message).toMatch(/unexpected keys: model\.moe_model\.gate\.bias/);
    expect(message).toMatch(/size mismatch for model\.moe_model\.experts\.0\.gate_proj\.weight: expected \[24,16\].*got \[16,24\]/);
    expect(message).not.toMatch(/embed_tokens/);
    expect(readWeights(moe)).toEqual(before);
    // non-strict: missing/unexpected tolerated once the shape is right
    tf.dispose(dict.get(`${PARROT_CHECKPOINT_PREFIX}experts.0.gate_proj.weight`)!);
    dict.set(`${PARROT_CHECKPOINT_PREFIX}experts.0.gate_proj.weight`, tf.zeros([I, D]));
    const result = moe.loadStateDict(dict, { prefix: PARROT_CHECKPOINT_PREFIX, strict: false });
    expect(result.missingKeys).toEqual([`${PARROT_CHECKPOINT_PREFIX}experts.2.up_proj.weight`]);
    expect(result.unexpectedKeys).toEqual([`${PARROT_CHECKPOINT_PREFIX}gate.bias`]);
    expect(readWeights(moe).experts[2].upProj).toEqual(before.experts[2].upProj);
    tf.dispose([...dict.values()]);
    moe.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// A safetensors file in the reference key layout, written byte by byte here (not with core's writer).

const bf16Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0] >>> 16; // truncation
const fromBf16 = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0];

interface RawTensor { name: string; dtype: 'F32' | 'BF16'; shape: number[]; values: number[] }

function writeSafetensors(tensors: RawTensor[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const t of tensors) {
    const bytes = new Uint8Array(t.values.length * (t.dtype === 'F32' ? 4 : 2));
    const view = new DataView(bytes.buffer);
    t.values.forEach((v, i) => (t.dtype === 'F32' ? view.setFloat32(4 * i, v, true) : view.setUint16(2 * i, bf16Bits(v), true)));
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** What the file holds after storage rounding (bf16 keeps the top 16 bits). */
function stored(m: Matrix, dtype: 'F32' | 'BF16'): Matrix {
  return m.map((row) => row.map((x) => (dtype === 'F32' ? Math.fround(x) : fromBf16(bf16Bits(x)))));
}

describe('ParrotMoE from a reference-layout safetensors checkpoint', () => {
  it('loads model.moe_model.* (F32 router, BF16 experts) and matches the float64 recomputation within 1e-5', () => {
    const w = randomWeights(31, D, I, E, 2);
    const p = PARROT_CHECKPOINT_PREFIX;
    const raw: RawTensor[] = [
      { name: 'lm_head.weight', dtype: 'BF16', shape: [2, D], values: new Array(2 * D).fill(0.5) },
      { name: `${p}gate.weight`, dtype: 'F32', shape: [E, D], values: w.gate.flat() },
    ];
    w.experts.forEach((e, i) => {
      raw.push({ name: `${p}experts.${i}.gate_proj.weight`, dtype: 'BF16', shape: [I, D], values: e.gateProj.flat() });
      raw.push({ name: `${p}experts.${i}.up_proj.weight`, dtype: 'BF16', shape: [I, D], values: e.upProj.flat() });
      raw.push({ name: `${p}experts.${i}.down_proj.weight`, dtype: 'BF16', shape: [D, I], values: e.downProj.flat() });
    });
    raw.push({ name: 'model.mm_projector.0.weight', dtype: 'F32', shape: [D, 4], values: new Array(4 * D).fill(1) });
    const bytes = writeSafetensors(raw);
    const expectedWeights: Float64Weights = {
      gate: stored(w.gate, 'F32'),
      experts: w.experts.map((e) => ({ gateProj: stored(e.gateProj, 'BF16'), upProj: stored(e.upProj, 'BF16'), downProj: stored(e.downProj, 'BF16') })),
    };

    const moe = newMoE();
    expectNoLeaks(() => { moe.loadSafetensors(bytes, { strict: true }); });
    expect(readWeights(moe)).toEqual(expectedWeights);

    const batch = randomBatch(12, N, D, [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]);
    const inputs = batchTensors(batch);
    const out = moe.forward(inputs);
    const ref = batch.visual.map((v, b) => parrotMoE64(v, batch.texts[b], expectedWeights, { alpha: 0.1, useMoe: true, useResidual: true, topK: null }));
    const expected = ref.map((r) => r.output);
    expectClose(out.output, expected, { rtol: 1e-5, atol: 1e-5 * maxAbs(expected), label: 'output' });
    expectClose(out.routingWeights, ref.map((r) => r.routing), { rtol: 1e-5, atol: 1e-6, label: 'routing' });
    tf.dispose([inputs.visual, inputs.text, inputs.textMask, out.output, out.routingWeights, out.textAttention]);

    // a checkpoint missing one MoE tensor is refused (strict), a core-written one round-trips
    const missing = writeSafetensors(raw.filter((t) => !t.name.endsWith('experts.1.down_proj.weight')));
    expect(() => moe.loadSafetensors(missing)).toThrow(/missing keys: model\.moe_model\.experts\.1\.down_proj\.weight/);
    const dict = moe.stateDict(p);
    const again = saveSafetensors(dict);
    const copy = newMoE();
    copy.loadSafetensors(again);
    expect(readWeights(copy)).toEqual(expectedWeights);
    const loaded = loadSafetensors(again);
    expect([...loaded.tensors.keys()].every((k) => k.startsWith(p))).toBe(true);
    tf.dispose([...dict.values(), ...loaded.tensors.values()]);
    moe.dispose();
    copy.dispose();
  });
});

describe('ParrotMoE: what stateDict writes, loadStateDict and loadSafetensors read back', () => {
  /** The dict as safetensors bytes; its tensors are disposed. */
  function saved(dict: Map<string, tf.Tensor>): Uint8Array {
    const bytes = saveSafetensors(dict);
    tf.dispose([...dict.values()]);
    return bytes;
  }

  /** Forward on a fixed batch: `[output, routingWeights]` as plain arrays. */
  function outputs(moe: ParrotMoE): number[][] {
    const inputs = batchTensors(randomBatch(41, N, D, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]));
    const out = moe.forward(inputs);
    const values = [Array.from(out.output.dataSync()), Array.from(out.routingWeights.dataSync())];
    tf.dispose([inputs.visual, inputs.text, inputs.textMask, out.output, out.routingWeights, out.textAttention]);
    return values;
  }

  it('save -> load into a fresh instance -> identical outputs, for each prefix and dict form', () => {
    const source = newMoE();
    const w = weightsToStateDict(randomWeights(40, D, I, E));
    source.loadStateDict(w);
    tf.dispose([...w.values()]);
    const expected = outputs(source);
    for (const prefix of ['', PARROT_CHECKPOINT_PREFIX]) {
      const bytes = saved(source.stateDict(prefix));
      // loadSafetensors finds the prefix by itself: the reference one when the file has it, else none.
      const viaFile = newMoE();
      expect(outputs(viaFile)).not.toEqual(expected);
      expectNoLeaks(() => { viaFile.loadSafetensors(bytes); });
      expect(outputs(viaFile)).toEqual(expected);
      // The same bytes with the prefix spelled out.
      const explicit = newMoE();
      explicit.loadSafetensors(bytes, { prefix });
      expect(outputs(explicit)).toEqual(expected);
      // loadStateDict takes the same prefix stateDict was given, from a Map or a NamedTensorMap.
      const { tensors } = loadSafetensors(bytes);
      for (const dict of [tensors, Object.fromEntries(tensors)]) {
        const viaDict = newMoE();
        viaDict.loadStateDict(dict, { prefix });
        expect(outputs(viaDict)).toEqual(expected);
        viaDict.dispose();
      }
      tf.dispose([...tensors.values()]);
      viaFile.dispose();
      explicit.dispose();
    }
    source.dispose();
  });

  it('a prefix that does not match says which one does; nothing is assigned', () => {
    const source = newMoE();
    const plain = saved(source.stateDict());
    const prefixed = saved(source.stateDict(PARROT_CHECKPOINT_PREFIX));
    const target = newMoE();
    const before = readWeights(target);
    const count = 1 + 3 * E;
    // Nothing under the asked prefix: the names in the file decide the advice (nothing is decoded).
    const tensorsBefore = tf.memory().numTensors;
    expect(() => target.loadSafetensors(plain, { prefix: PARROT_CHECKPOINT_PREFIX })).toThrow(
      `all ${count} missing keys appear without a prefix: pass { prefix: '' }`,
    );
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(() => target.loadSafetensors(prefixed, { prefix: '' })).toThrow(
      `all ${count} missing keys appear with the prefix '${PARROT_CHECKPOINT_PREFIX}': pass { prefix: '${PARROT_CHECKPOINT_PREFIX}' }`,
    );
    const { tensors } = loadSafetensors(prefixed);
    expect(() => target.loadStateDict(tensors)).toThrow(StateDictError);
    expect(() => target.loadStateDict(tensors)).toThrow(`pass { prefix: '${PARROT_CHECKPOINT_PREFIX}' }`);
    // A file with neither layout gets the plain missing-keys error.
    const head = tf.zeros([2, 2]);
    const unrelated = saveSafetensors(new Map([['lm_head.weight', head]]));
    head.dispose();
    expect(() => target.loadSafetensors(unrelated)).toThrow(/missing keys: model\.moe_model\.gate\.weight/);
    expect(() => target.loadSafetensors(unrelated)).not.toThrow(/pass \{/);
    expect(readWeights(target)).toEqual(before);
    tf.dispose([...tensors.values()]);
    source.dispose();
    target.dispose();
  });
});
