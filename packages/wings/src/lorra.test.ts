import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { StateDictError, disposeStateDict, loadSafetensors, saveSafetensors, setSeed } from '@mllm/core';
import { checkVariableGradients } from '@mllm/core/testing';
import { LoRRA } from './lorra.js';
import {
  learnerStateDict,
  lorra64,
  RELATIVE_TOLERANCE,
  ON_WEBGPU,
  maxRelativeError,
  randomArray,
  randomLearnerWeights,
  type LearnerCase64,
} from './reference-math.testutil.js';

const H = 8;
const HEADS = 2;
const R = 3;
const THETA = 10000;

function makeCase(seed: number, B: number, Lq: number, Lk: number): LearnerCase64 {
  const q = randomArray(seed, B * Lq * H, 1);
  const f = randomArray(seed + 1, B * Lk * H, 1);
  return {
    query: Array.from({ length: B }, (_, b) => Array.from({ length: Lq }, (_, t) => q.slice((b * Lq + t) * H, (b * Lq + t + 1) * H))),
    source: Array.from({ length: B }, (_, b) => Array.from({ length: Lk }, (_, t) => f.slice((b * Lk + t) * H, (b * Lk + t + 1) * H))),
    queryPositions: Array.from({ length: B }, () => Array.from({ length: Lq }, (_, t) => t)),
    keyPositions: Array.from({ length: B }, (_, b) => Array.from({ length: Lk }, (_, j) => 2 + 3 * j + b)),
  };
}

function run(learner: LoRRA, c: LearnerCase64): number[][][] {
  return tf.tidy(() =>
    learner
      .forward({
        query: tf.tensor3d(c.query),
        source: tf.tensor3d(c.source),
        queryPositions: tf.tensor2d(c.queryPositions, undefined, 'int32'),
        keyPositions: tf.tensor2d(c.keyPositions, undefined, 'int32'),
        keyMask: c.keyMask ? tf.tensor2d(c.keyMask) : null,
        causalByPosition: c.causalByPosition,
        attendMask: c.attendMask ? tf.tensor3d(c.attendMask) : null,
        fullyMaskedRows: c.fullyMaskedRows,
      })
      .arraySync(),
  );
}

function loaded(seed: number, weights = randomLearnerWeights(seed, H, R)): LoRRA {
  const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
  const dict = learnerStateDict(weights);
  learner.loadStateDict(dict);
  disposeStateDict(dict);
  return learner;
}

describe('LoRRA', () => {
  it('a fresh learner outputs exactly 0 and has the reference parameter names and shapes', () => {
    setSeed(3);
    const before = tf.memory().numTensors;
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
    const out = run(learner, makeCase(1, 2, 5, 4)).flat(2);
    expect(out.length).toBe(2 * 5 * H);
    expect(out.every((v) => v === 0)).toBe(true);
    const names = learner.namedParameters().map(([n, p]) => `${n}:${p.referenceShape.join('x')}`);
    expect(names).toEqual([
      `q_proj.0.weight:${R}x${H}`, `q_proj.1.weight:${H}x${R}`,
      `k_proj.0.weight:${R}x${H}`, `k_proj.1.weight:${H}x${R}`,
      `v_proj.0.weight:${R}x${H}`, `v_proj.1.weight:${H}x${R}`,
      `o_proj.0.weight:${R}x${H}`, `o_proj.1.weight:${H}x${R}`,
    ]);
    // Up-projections start at zero, down-projections do not (N(0, 0.02²)).
    const sd = learner.stateDict();
    for (const p of ['q', 'k', 'v', 'o']) {
      expect(Math.max(...Array.from(sd.get(`${p}_proj.1.weight`)!.dataSync(), Math.abs))).toBe(0);
      const down = Array.from(sd.get(`${p}_proj.0.weight`)!.dataSync());
      expect(Math.max(...down.map(Math.abs))).toBeGreaterThan(0);
      expect(Math.max(...down.map(Math.abs))).toBeLessThan(0.2);
    }
    disposeStateDict(sd);
    learner.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('with zero q/k/v low-rank weights equals plain cross-attention with rotary (float64)', () => {
    const w = randomLearnerWeights(11, H, R);
    for (const p of ['q', 'k', 'v'] as const) w[p][1] = w[p][1].map((row) => row.map(() => 0));
    const learner = loaded(0, w);
    const c = makeCase(5, 2, 5, 4);
    const expected = lorra64(w, HEADS, THETA, c, { lowRank: false });
    expect(maxRelativeError(run(learner, c), expected)).toBeLessThan(RELATIVE_TOLERANCE);
    // …and differs from it once the low-rank corrections are non-zero.
    const full = randomLearnerWeights(11, H, R);
    expect(maxRelativeError(lorra64(full, HEADS, THETA, c), expected)).toBeGreaterThan(1e-2);
    learner.dispose();
  });

  it('matches an independent float64 computation (key mask, causal by position, no tensor leaks)', () => {
    const w = randomLearnerWeights(21, H, R);
    const learner = loaded(0, w);
    const c = makeCase(7, 2, 6, 5);
    c.keyPositions = [[0, 1, 2, 4, 5], [1, 2, 3, 3, 9]];
    c.keyMask = [[1, 1, 0, 1, 1], [1, 1, 1, 1, 0]];
    c.causalByPosition = true;
    const before = tf.memory().numTensors;
    const got = run(learner, c);
    expect(tf.memory().numTensors).toBe(before);
    expect(maxRelativeError(got, lorra64(w, HEADS, THETA, c))).toBeLessThan(RELATIVE_TOLERANCE);
    // Query 0 of sample 1 (position 0) precedes every key: its row is fully masked → 0.
    expect(got[1][0].every((v) => v === 0)).toBe(true);
    // Without masks the result differs.
    const unmasked = { ...c, keyMask: undefined, causalByPosition: false };
    expect(maxRelativeError(lorra64(w, HEADS, THETA, unmasked), lorra64(w, HEADS, THETA, c))).toBeGreaterThan(1e-3);
    expect(maxRelativeError(run(learner, unmasked), lorra64(w, HEADS, THETA, unmasked))).toBeLessThan(RELATIVE_TOLERANCE);
    learner.dispose();
  });

  it('fullyMaskedRows: uniform averages a fully masked row, zero leaves it out (float64)', () => {
    const w = randomLearnerWeights(31, H, R);
    const learner = loaded(0, w);
    const c = makeCase(9, 1, 3, 4);
    c.attendMask = [[[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]];
    for (const rows of ['zero', 'uniform'] as const) {
      const got = run(learner, { ...c, fullyMaskedRows: rows });
      expect(maxRelativeError(got, lorra64(w, HEADS, THETA, { ...c, fullyMaskedRows: rows }))).toBeLessThan(RELATIVE_TOLERANCE);
      if (rows === 'zero') expect(got[0][1].every((v) => v === 0)).toBe(true);
      else expect(Math.max(...got[0][1].map(Math.abs))).toBeGreaterThan(1e-3);
    }
    learner.dispose();
  });

  it('with the clean causal mask, perturbing token t+1 leaves outputs at ≤ t unchanged', () => {
    const learner = loaded(0, randomLearnerWeights(41, H, R));
    const L = 6;
    const c = makeCase(13, 1, L, L);
    c.keyPositions = c.queryPositions;
    c.causalByPosition = true;
    const base = run(learner, c);
    for (const t of [1, 3]) {
      const perturbed = structuredClone(c);
      perturbed.source[0][t + 1] = perturbed.source[0][t + 1].map((v) => v + 5);
      perturbed.query[0][t + 1] = perturbed.query[0][t + 1].map((v) => v - 3);
      const out = run(learner, perturbed);
      for (let s = 0; s <= t; s++) expect(out[0][s]).toEqual(base[0][s]);
      expect(maxRelativeError(out[0][t + 1], base[0][t + 1])).toBeGreaterThan(1e-4);
    }
    learner.dispose();
  });

  it('gradients match central differences (weights and inputs)', () => {
    const learner = loaded(0, randomLearnerWeights(51, H, R));
    const c = makeCase(17, 2, 4, 3);
    const query = tf.variable(tf.tensor3d(c.query));
    const source = tf.variable(tf.tensor3d(c.source));
    const qp = tf.tensor2d(c.queryPositions, undefined, 'int32');
    const kp = tf.tensor2d([[0, 1, 2], [1, 3, 9]], undefined, 'int32');
    const keyMask = tf.tensor2d([[1, 1, 1], [1, 0, 1]]);
    const weights = tf.tensor3d(randomArray(3, 2 * 4 * H), [2, 4, H]);
    const before = tf.memory().numTensors;
    const loss = () =>
      tf.sum(tf.mul(learner.forward({ query, source, queryPositions: qp, keyPositions: kp, keyMask, causalByPosition: true }), weights)) as tf.Scalar;
    const all = [...learner.trainableVariables(), query, source];
    // Software WebGPU needs ~0.7 s per forward: check A_q, B_k, B_o and the query there, fewer elements.
    const checked = ON_WEBGPU ? [all[0], all[3], all[7], all[8]] : all;
    const report = checkVariableGradients(loss, checked, { epsilon: 1e-2, maxElementsPerInput: ON_WEBGPU ? 2 : 8, label: 'LoRRA' });
    expect(report.checked).toBe(checked.reduce((n, v) => n + Math.min(v.size, ON_WEBGPU ? 2 : 8), 0));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([query, source, qp, kp, keyMask, weights]);
    learner.dispose();
  });

  it('loads reference weights with a prefix, strictly, and round-trips its state dict', () => {
    const w = randomLearnerWeights(61, H, R);
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
    const dict = learnerStateDict(w, 'model.layers.2.attn_pool.');
    dict.set('model.layers.2.attn_t_pool.q_proj.0.weight', tf.zeros([R, H]));
    const result = learner.loadStateDict(dict, { prefix: 'model.layers.2.attn_pool.' });
    expect(result.loadedKeys.length).toBe(8);
    const back = learner.stateDict('model.layers.2.attn_pool.');
    expect(back.get('model.layers.2.attn_pool.k_proj.1.weight')!.arraySync()).toEqual(
      tf.tidy(() => tf.tensor2d(w.k[1]).arraySync()),
    );
    disposeStateDict(back);
    // Strict: a missing key, an unexpected key, and a transposed shape are all errors; nothing is assigned.
    const beforeValues = learner.stateDict();
    const bad = learnerStateDict(randomLearnerWeights(62, H, R));
    bad.get('o_proj.1.weight')!.dispose();
    bad.delete('o_proj.1.weight');
    bad.set('o_proj.2.weight', tf.zeros([H, R]));
    bad.get('q_proj.0.weight')!.dispose();
    bad.set('q_proj.0.weight', tf.zeros([H, R]));
    expect(() => learner.loadStateDict(bad)).toThrowError(StateDictError);
    try {
      learner.loadStateDict(bad);
    } catch (e) {
      expect(String(e)).toMatch(/missing keys: o_proj\.1\.weight/);
      expect(String(e)).toMatch(/unexpected keys: o_proj\.2\.weight/);
      expect(String(e)).toMatch(/size mismatch for q_proj\.0\.weight: expected \[3,8\]/);
    }
    const after = learner.stateDict();
    for (const [k, v] of beforeValues) expect(after.get(k)!.arraySync()).toEqual(v.arraySync());
    // Non-strict ignores missing/unexpected keys but still rejects the bad shape.
    expect(() => learner.loadStateDict(bad, { strict: false })).toThrowError(/size mismatch/);
    [dict, bad, beforeValues, after].forEach(disposeStateDict);
    learner.dispose();
  });

  it('rejects bad shapes and arguments with clear errors', () => {
    expect(() => new LoRRA({ hiddenSize: 10, numHeads: 4, rank: 2, ropeTheta: THETA })).toThrowError(/divisible by numHeads/);
    expect(() => new LoRRA({ hiddenSize: 8, numHeads: 2, rank: 0, ropeTheta: THETA })).toThrowError(/rank must be a positive integer/);
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const q = tf.zeros([2, 3, H]);
      const f = tf.zeros([2, 4, H]);
      const qp = tf.zeros([2, 3], 'int32');
      const kp = tf.zeros([2, 4], 'int32');
      expect(() => learner.forward({ query: tf.zeros([2, 3, 6]), source: f, queryPositions: qp, keyPositions: kp })).toThrowError(
        /query must have shape \[\*, \*, 8\], got \[2, 3, 6\]/,
      );
      expect(() => learner.forward({ query: q, source: tf.zeros([1, 4, H]), queryPositions: qp, keyPositions: kp })).toThrowError(
        /source must have shape \[2, \*, 8\], got \[1, 4, 8\]/,
      );
      expect(() => learner.forward({ query: q, source: f, queryPositions: qp, keyPositions: tf.zeros([2, 3]) })).toThrowError(
        /keyPositions must have shape \[2, 4\], got \[2, 3\]/,
      );
      expect(() => learner.forward({ query: q, source: f, queryPositions: qp, keyPositions: kp, keyMask: tf.ones([2, 5]) })).toThrowError(
        /keyMask must have shape \[2, 4\]/,
      );
    });
    expect(tf.memory().numTensors).toBe(before);
    learner.dispose();
  });

  it('serializes its config (registerClass / fromConfig) and builds from a reference config', () => {
    const learner = LoRRA.fromReferenceConfig({ hidden_size: 16, num_attention_heads: 4, lora_dim: 2, rope_theta: 1e6 });
    expect([learner.hiddenSize, learner.numHeads, learner.headDim, learner.rank, learner.ropeTheta]).toEqual([16, 4, 4, 2, 1e6]);
    const config = learner.getConfig();
    const entry = tf.serialization.SerializationMap.getMap().classNameMap['LoRRA'];
    expect(entry).toBeDefined();
    const [Cls, fromConfig] = entry;
    const copy = fromConfig(Cls, { ...config, name: 'lorra_copy' }) as unknown as LoRRA;
    expect(copy).toBeInstanceOf(LoRRA);
    expect([copy.hiddenSize, copy.numHeads, copy.rank, copy.ropeTheta]).toEqual([16, 4, 2, 1e6]);
    expect(() => LoRRA.fromReferenceConfig({ hidden_size: 16, lora_dim: 2 } as never)).toThrowError(/num_attention_heads/);
    learner.dispose();
    copy.dispose();
  });
});

describe('LoRRA state dict round trip', () => {
  it('stateDict(prefix) -> safetensors -> a fresh learner loadStateDict(…, { prefix }) -> identical outputs', () => {
    const source = loaded(71);
    const c = makeCase(72, 2, 3, 4);
    const expected = run(source, c);
    const prefix = 'model.layers.2.attn_pool.';
    const dict = source.stateDict(prefix);
    const bytes = saveSafetensors(dict);
    disposeStateDict(dict);
    const { tensors } = loadSafetensors(bytes);
    // A NamedTensorMap (plain object) and the Map both load.
    for (const input of [tensors, Object.fromEntries(tensors)]) {
      const fresh = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
      expect(run(fresh, c)).not.toEqual(expected);
      fresh.loadStateDict(input, { prefix });
      expect(run(fresh, c)).toEqual(expected);
      fresh.dispose();
    }
    disposeStateDict(tensors);
    source.dispose();
  });
});
