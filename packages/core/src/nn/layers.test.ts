/**
 * Core building blocks against independent float64 references (plain JS loops), numerical
 * gradient checks, config round-trips and leak checks. Runs on every test backend.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  LayerNorm, Linear, MlpGeluProjector, MultiHeadAttention, RMSNorm, SwiGLU,
  accurateSinCos, applyRotary, causalMask, gelu, loadStateDict, maskedSoftmax, rotaryCosSin, setSeed,
  positionCausalMask, scaledDotProductAttention, stateDict, disposeStateDict,
} from '../index.js';
import {
  checkGradients, checkVariableGradients, expectClose, expectNoLeaks, gelu64, linear64, rope64, silu64, softmax64,
} from '../testing/index.js';

// ---------- float64 reference helpers (nested row-major arrays; the shared ones come from the kit) ----------
type Mat = number[][];
const rand = (rng: () => number, rows: number, cols: number): Mat =>
  Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng() * 2 - 1));
function rngOf(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function loadWeights(module: { namedParameters(): Array<[string, { referenceShape: readonly number[] }]> } & object, rng: () => number) {
  const dict = new Map<string, tf.Tensor>();
  const values = new Map<string, Mat | number[]>();
  for (const [name, p] of module.namedParameters()) {
    const shape = p.referenceShape;
    const v = shape.length === 2 ? rand(rng, shape[0], shape[1]) : rand(rng, 1, shape[0])[0];
    values.set(name, v);
    dict.set(name, tf.tensor(v as number[] | number[][], [...shape]));
  }
  loadStateDict(module as never, dict);
  tf.dispose([...dict.values()]);
  return values;
}

describe('norms and activations', () => {
  it('RMSNorm and LayerNorm match float64', () => {
    const rng = rngOf(1);
    const x = rand(rng, 3, 6);
    const rms = new RMSNorm({ dim: 6, eps: 1e-6 });
    const ln = new LayerNorm({ dim: 6, eps: 1e-12 });
    const wr = loadWeights(rms, rng).get('weight') as number[];
    const lw = loadWeights(ln, rng);
    const [lwW, lwB] = [lw.get('weight') as number[], lw.get('bias') as number[]];
    const expectedRms = x.map((r) => {
      const ms = r.reduce((s, v) => s + v * v, 0) / r.length;
      return r.map((v, i) => (v / Math.sqrt(ms + 1e-6)) * wr[i]);
    });
    const expectedLn = x.map((r) => {
      const mean = r.reduce((a, b) => a + b, 0) / r.length;
      const variance = r.reduce((s, v) => s + (v - mean) ** 2, 0) / r.length;
      return r.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-12)) * lwW[i] + lwB[i]);
    });
    const xt = tf.tensor2d(x);
    expectClose(rms.forward(xt), expectedRms);
    expectClose(ln.forward(xt), expectedLn);
    expect(() => rms.forward(tf.zeros([2, 5]))).toThrow(/RMSNorm: input last dimension must be 6, got \[2,5\]/);
    rms.dispose();
    ln.dispose();
  });

  it('GELU is the exact erf form', () => {
    const xs = [-3, -1.5, -0.3, 0, 0.2, 1, 2.5];
    expectClose(gelu(tf.tensor1d(xs)), xs.map(gelu64));
  });
});

describe('masked softmax', () => {
  it('excludes masked positions, gives zeros on an all-masked row, and has finite gradients', () => {
    const logits = [[1, 2, 3], [0.5, -1, 2], [4, 4, 4]];
    const keep = [[true, false, true], [false, false, false], [true, true, true]];
    const p = maskedSoftmax(tf.tensor2d(logits), tf.tensor2d(keep.map((r) => r.map(Number))));
    expectClose(p, logits.map((r, i) => softmax64(r, keep[i])));
    const mask = tf.tensor2d(keep.map((r) => r.map(Number)));
    const weights = tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    checkGradients((l) => tf.sum(tf.mul(maskedSoftmax(l, mask), weights)), [tf.tensor2d(logits)]);
    const g = tf.grad((l: tf.Tensor) => tf.sum(tf.mul(maskedSoftmax(l, mask), weights)))(tf.tensor2d(logits));
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
  });
});

describe('SwiGLU and projector', () => {
  it('SwiGLU = down(silu(gate x) ⊙ up x) and mlp2x_gelu = fc2(gelu(fc1 x)), float64', () => {
    const rng = rngOf(2);
    const mlp = new SwiGLU({ hiddenSize: 4, intermediateSize: 6 });
    const w = loadWeights(mlp, rng);
    const x = rand(rng, 5, 4);
    const g = linear64(x, w.get('gate_proj.weight') as Mat);
    const u = linear64(x, w.get('up_proj.weight') as Mat);
    const expected = linear64(g.map((r, i) => r.map((v, j) => silu64(v) * u[i][j])), w.get('down_proj.weight') as Mat);
    expectClose(mlp.forward(tf.tensor2d(x)), expected);

    const projector = new MlpGeluProjector({ inFeatures: 4, outFeatures: 3 });
    const pw = loadWeights(projector, rng);
    const h1 = linear64(x, pw.get('0.weight') as Mat).map((r) => r.map((v, j) => gelu64(v + (pw.get('0.bias') as number[])[j])));
    const out = linear64(h1, pw.get('2.weight') as Mat).map((r) => r.map((v, j) => v + (pw.get('2.bias') as number[])[j]));
    expectClose(projector.forward(tf.tensor3d([x])), [out]);
    mlp.dispose();
    projector.dispose();
  });

  it('gradients of every weight and the input are right', () => {
    setSeed(3);
    const mlp = new SwiGLU({ hiddenSize: 3, intermediateSize: 4 });
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 5);
    checkVariableGradients(() => tf.sum(tf.square(mlp.forward(x))), mlp.trainableVariables());
    checkGradients((input) => tf.sum(tf.square(mlp.forward(input))), [x]);
    mlp.dispose();
  });
});

describe('rotary embedding and attention', () => {
  it('rotary matches float64 rotate-half at explicit positions', () => {
    const rng = rngOf(4);
    const positions = [[0, 3, 7], [5, 1, 2]];
    const x = [0, 1].map(() => [rand(rng, 3, 4)]); // [B=2, h=1, L=3, d=4]
    const { cos, sin } = rotaryCosSin(tf.tensor2d(positions, undefined, 'int32'), 4, 10000);
    const y = applyRotary(tf.tensor4d(x), cos, sin);
    expectClose(y, x.map((b, bi) => b.map((h) => h.map((row, l) => rope64(row, positions[bi][l], 10000)))));
  });

  it('sin/cos are float32-accurate over a wide range of angles on every backend', () => {
    const angles = Array.from({ length: 200 }, (_, i) => -50 + i * 0.731);
    const { sin, cos } = accurateSinCos(tf.tensor1d(angles));
    const f32 = angles.map(Math.fround);
    expectClose(sin, f32.map(Math.sin), { rtol: 0, atol: 2e-6 });
    expectClose(cos, f32.map(Math.cos), { rtol: 0, atol: 2e-6 });
  });

  it('MultiHeadAttention with rope, causal mask and probabilities matches float64', () => {
    const rng = rngOf(5);
    const [B, L, H, heads] = [2, 4, 8, 2];
    const d = H / heads;
    const mha = new MultiHeadAttention({ hiddenSize: H, numHeads: heads, ropeTheta: 100, qkvBias: true });
    const w = loadWeights(mha, rng);
    const x = Array.from({ length: B }, () => rand(rng, L, H));
    const positions = [[0, 1, 2, 3], [0, 1, 2, 3]];
    const proj = (name: string, input: Mat) =>
      linear64(input, w.get(`${name}.weight`) as Mat).map((r) => r.map((v, j) => v + ((w.get(`${name}.bias`) as number[] | undefined)?.[j] ?? 0)));
    const expectedOut: Mat[] = [];
    const expectedProbs: number[][][][] = [];
    for (let b = 0; b < B; b++) {
      const q = proj('q_proj', x[b]);
      const k = proj('k_proj', x[b]);
      const v = proj('v_proj', x[b]);
      const merged: Mat = Array.from({ length: L }, () => new Array(H).fill(0));
      const probsB: number[][][] = [];
      for (let h = 0; h < heads; h++) {
        const qh = q.map((r, l) => rope64(r.slice(h * d, (h + 1) * d), positions[b][l], 100));
        const kh = k.map((r, l) => rope64(r.slice(h * d, (h + 1) * d), positions[b][l], 100));
        const probs = qh.map((qr, i) =>
          softmax64(kh.map((kr) => qr.reduce((s, val, t) => s + val * kr[t], 0) / Math.sqrt(d)), kh.map((_, j) => j <= i)));
        probsB.push(probs);
        for (let i = 0; i < L; i++) for (let t = 0; t < d; t++) merged[i][h * d + t] = probs[i].reduce((s, p, j) => s + p * v[j][h * d + t], 0);
      }
      expectedProbs.push(probsB);
      expectedOut.push(linear64(merged, w.get('o_proj.weight') as Mat));
    }
    const mask = causalMask(L);
    const r = mha.forward({ hidden: tf.tensor3d(x), queryPositions: tf.tensor2d(positions, undefined, 'int32'), mask, returnProbs: true });
    expectClose(r.output, expectedOut);
    expectClose(r.probs!, expectedProbs);
    expect(() => mha.forward({ hidden: tf.zeros([1, 2, 5]) })).toThrow(/hidden must be \[B, L, 8\], got \[1,2,5\]/);
    mha.dispose();
  });

  it('a query sees only keys whose real position is not after its own', () => {
    const mask = positionCausalMask(tf.tensor2d([[2, 0]], undefined, 'int32'), tf.tensor2d([[0, 1, 2, 3]], undefined, 'int32'));
    expect(mask.dtype).toBe('bool');
    expect(mask.arraySync()).toEqual([[[[1, 1, 1, 0], [1, 0, 0, 0]]]]);
  });

  it('attention gradients through the explicit-transpose products are right', () => {
    const q = tf.randomNormal([1, 2, 3, 2], 0, 1, 'float32', 6);
    const k = tf.randomNormal([1, 2, 4, 2], 0, 1, 'float32', 7);
    const v = tf.randomNormal([1, 2, 4, 2], 0, 1, 'float32', 8);
    const keep = tf.tensor4d([[[[1, 1, 0, 1]]]]);
    checkGradients((a, b, c) => tf.sum(tf.square(scaledDotProductAttention(a, b, c, keep).output)), [q, k, v]);
  });
});

describe('module plumbing', () => {
  it('getConfig/fromConfig rebuilds each layer and state dicts round-trip', () => {
    setSeed(9);
    const layers = [
      new Linear({ inFeatures: 3, outFeatures: 2, bias: false }),
      new RMSNorm({ dim: 4, eps: 1e-5 }),
      new LayerNorm({ dim: 4 }),
      new SwiGLU({ hiddenSize: 4, intermediateSize: 5 }),
      new MlpGeluProjector({ inFeatures: 3, outFeatures: 4 }),
      new MultiHeadAttention({ hiddenSize: 4, numHeads: 2, ropeTheta: 10 }),
    ];
    for (const layer of layers) {
      const cls = layer.constructor as unknown as { fromConfig: (c: unknown, cfg: unknown) => typeof layer };
      const { name: _name, ...config } = layer.getConfig() as Record<string, unknown>;
      const rebuilt = cls.fromConfig(cls, config);
      expect(rebuilt.getConfig()).toMatchObject(config);
      const sd = stateDict(layer);
      loadStateDict(rebuilt, sd);
      const again = stateDict(rebuilt);
      for (const [key, value] of sd) expectClose(again.get(key)!, value, { rtol: 0, atol: 0 });
      disposeStateDict(sd);
      disposeStateDict(again);
      rebuilt.dispose();
      layer.dispose();
    }
  });

  it('forward passes leak no tensors, and frozen parameters are excluded from training', () => {
    const mha = new MultiHeadAttention({ hiddenSize: 4, numHeads: 2, ropeTheta: 10 });
    const x = tf.randomNormal([1, 3, 4]);
    const pos = tf.tensor2d([[0, 1, 2]], undefined, 'int32');
    expectNoLeaks(() => mha.forward({ hidden: x, queryPositions: pos, returnProbs: true }));
    mha.qProj.setTrainable(false);
    expect(mha.trainableVariables().length).toBe(3);
    expect(mha.nonTrainableWeights.length).toBe(1);
    mha.dispose();
    expect(mha.isDisposed).toBe(true);
  });
});
