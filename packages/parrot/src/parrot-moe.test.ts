import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { ParrotMoE, type ParrotMoEArgs } from './parrot-moe.js';
import type { ExpertStrategy } from './experts.js';
import { loadBalancing64, parrotMoE64, expert64, type Float64Options } from './testing/float64-moe.js';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { DIMS, batchTensors, maxAbs, randomBatch, randomWeights, readWeights, weightsToStateDict } from './testing/fixtures.js';

const { D, I, E, N } = DIMS;
/** Sample 0: 7 real tokens; sample 1: 4 real tokens with a hole (padding need not be at the end). */
const LAYOUTS = [
  [1, 1, 1, 1, 1, 1, 1],
  [1, 1, 0, 1, 1, 0, 0],
];

/** float32 vs float64: relative 1e-4, absolute 1e-5 of the tensor's scale. */
function close(actual: tf.Tensor, expected: unknown, label: string): void {
  expectClose(actual, expected as number[], { rtol: 1e-4, atol: 1e-5 * Math.max(maxAbs(expected), 1e-3), label });
}

function makeMoE(args: Partial<ParrotMoEArgs> = {}, seed = 11, gateScale = 1): ParrotMoE {
  const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, ...args });
  const dict = weightsToStateDict(randomWeights(seed, D, I, E, gateScale));
  moe.loadStateDict(dict);
  for (const t of dict.values()) t.dispose();
  return moe;
}

function options64(moe: ParrotMoE): Float64Options {
  return { alpha: moe.moeWeight, useMoe: moe.useMoe, useResidual: moe.useResidual, topK: moe.topK };
}

function runBoth(moe: ParrotMoE, seed = 5, layouts = LAYOUTS) {
  const batch = randomBatch(seed, N, D, layouts);
  const inputs = batchTensors(batch);
  const out = moe.forward(inputs);
  const weights = readWeights(moe);
  const ref = batch.visual.map((v, b) => parrotMoE64(v, batch.texts[b], weights, options64(moe)));
  return { batch, inputs, out, ref };
}

function disposeAll(...xs: unknown[]): void {
  tf.dispose(xs.filter((x) => x !== undefined) as tf.TensorContainer[]);
}

/** The padded-row attention of the reference: its real-token weights scattered, 0 at padding. */
function scatterAttention(ref: number[], mask: number[]): number[] {
  let k = 0;
  return mask.map((m) => (m ? ref[k++] : 0));
}

describe('ParrotMoE forward (float64 golden values)', () => {
  for (const alpha of [0.1, 1.0]) {
    for (const strategy of ['separate', 'stacked', 'wide'] as ExpertStrategy[]) {
      it(`matches the float64 reference (α=${alpha}, ${strategy})`, () => {
        const moe = makeMoE({ moeWeight: alpha, expertStrategy: strategy });
        const { batch, inputs, out, ref } = runBoth(moe);
        expect(out.output.shape).toEqual([2, N, D]);
        expect(out.routingWeights.shape).toEqual([2, E]);
        expect(out.textAttention.shape).toEqual([2, LAYOUTS[0].length]);
        expect(out.auxLoss).toBeUndefined();
        close(out.output, ref.map((r) => r.output), 'output');
        close(out.routingWeights, ref.map((r) => r.routing), 'routing');
        close(out.textAttention, ref.map((r, b) => scatterAttention(r.attention, batch.mask[b])), 'attention');
        disposeAll(inputs, out);
        moe.dispose();
      });
    }
  }

  it('routing is far from uniform in the golden test (the router matters)', () => {
    const moe = makeMoE();
    const { inputs, out } = runBoth(moe);
    const w = out.routingWeights.arraySync() as number[][];
    expect(Math.max(...w[0]) - Math.min(...w[0])).toBeGreaterThan(0.05);
    expect(Math.abs(w[0][0] - w[1][0])).toBeGreaterThan(1e-3); // per-sample routing
    disposeAll(inputs, out);
    moe.dispose();
  });

  it('without the residual the output is the pure mixture', () => {
    const moe = makeMoE({ useResidual: false });
    const { inputs, out, ref } = runBoth(moe);
    close(out.output, ref.map((r) => r.output), 'output');
    disposeAll(inputs, out);
    moe.dispose();
  });

  it('use_moe=false returns the input unchanged', () => {
    const moe = makeMoE({ useMoe: false });
    const { inputs, out } = runBoth(moe);
    expect(out.output.arraySync()).toEqual(inputs.visual.arraySync());
    disposeAll(inputs, out);
    moe.dispose();
  });
});

describe('ParrotMoE batching and masking', () => {
  it('a padded batch equals per-sample calls on the real tokens only', () => {
    const moe = makeMoE();
    const { batch, inputs, out } = runBoth(moe);
    const outputs = out.output.arraySync() as number[][][];
    const routing = out.routingWeights.arraySync() as number[][];
    batch.visual.forEach((v, b) => {
      const single = moe.forward({ visual: tf.tensor3d([v]), text: tf.tensor3d([batch.texts[b]]) });
      close(single.output, [outputs[b]], `sample ${b} output`);
      close(single.routingWeights, [routing[b]], `sample ${b} routing`);
      disposeAll(single);
    });
    disposeAll(inputs, out);
    moe.dispose();
  });

  it('values at masked text positions have no effect', () => {
    const moe = makeMoE();
    const { batch, inputs, out } = runBoth(moe);
    const changed = batch.paddedText.map((rows, b) => rows.map((row, t) => (batch.mask[b][t] ? row : row.map((x) => -3 * x + 7))));
    const text = tf.tensor3d(changed);
    const again = moe.forward({ visual: inputs.visual, text, textMask: inputs.textMask });
    expectClose(again.output, out.output, { rtol: 1e-6, atol: 1e-7, label: 'output' });
    expectClose(again.textAttention, out.textAttention, { rtol: 1e-6, atol: 1e-7, label: 'attention' });
    const attention = out.textAttention.arraySync() as number[][];
    batch.mask.forEach((m, b) => m.forEach((keep, t) => { if (!keep) expect(attention[b][t]).toBe(0); }));
    disposeAll(inputs, out, again, text);
    moe.dispose();
  });

  it('an all-masked sample gets zero attention and uniform routing (the reference with empty text), no NaN', () => {
    const moe = makeMoE();
    const layouts = [[1, 1, 1, 0], [0, 0, 0, 0]];
    const { inputs, out, ref } = runBoth(moe, 9, layouts);
    expect(ref[1].attention).toEqual([]);
    const attention = out.textAttention.arraySync() as number[][];
    expect(attention[1]).toEqual([0, 0, 0, 0]);
    close(out.routingWeights, ref.map((r) => r.routing), 'routing');
    close(tf.slice(out.routingWeights, [1, 0], [1, E]), [new Array(E).fill(1 / E)], 'uniform routing');
    close(out.output, ref.map((r) => r.output), 'output');
    expect(Number.isFinite(tf.sum(out.output).dataSync()[0])).toBe(true);
    disposeAll(inputs, out);
    moe.dispose();
  });

  it('zero-length text (T = 0) behaves like an all-masked row', () => {
    const moe = makeMoE();
    const batch = randomBatch(4, N, D, [[1]]);
    const visual = tf.tensor3d(batch.visual);
    const text = tf.zeros([1, 0, D]) as tf.Tensor3D;
    const out = moe.forward({ visual, text });
    expect(out.textAttention.shape).toEqual([1, 0]);
    close(out.routingWeights, [new Array(E).fill(1 / E)], 'uniform routing');
    const ref = parrotMoE64(batch.visual[0], [], readWeights(moe), options64(moe));
    close(out.output, [ref.output], 'output');
    disposeAll(out, visual, text);
    moe.dispose();
  });

  it('a saturated (one-hot) router gives exactly one expert plus the residual', () => {
    const moe = makeMoE({ moeWeight: 0.1 });
    const rng = randomBatch(3, N, D, [[1, 1, 1]]);
    const u = rng.paddedText[0][0];
    const norm2 = u.reduce((s, x) => s + x * x, 0);
    for (let j = 0; j < E; j++) {
      // every text token equals u ⇒ pooled = u; row j of the router gives logit 1000, the others 0
      const gate = Array.from({ length: E }, (_, i) => (i === j ? u.map((x) => (1000 * x) / norm2) : new Array(D).fill(0)));
      tf.tidy(() => { moe.loadStateDict(new Map([['gate.weight', tf.tensor2d(gate)]]), { strict: false }); });
      const visual = tf.tensor3d(rng.visual);
      const text = tf.tensor3d([[u, u, u]]);
      const out = moe.forward({ visual, text });
      const w = out.routingWeights.arraySync() as number[][];
      expect(w[0]).toEqual(Array.from({ length: E }, (_, i) => (i === j ? 1 : 0)));
      const expected = tf.tidy(() => tf.add(moe.experts[j].forward(visual), tf.mul(visual, 0.1)));
      expectClose(out.output, expected, { rtol: 1e-5, atol: 1e-6, label: `expert ${j}` });
      const weights = readWeights(moe);
      close(out.output, [rng.visual[0].map((x) => expert64(weights.experts[j], x).map((y, d) => y + 0.1 * x[d]))], 'float64 expert');
      disposeAll(out, visual, text, expected);
    }
    moe.dispose();
  });
});

describe('ParrotMoE beyond the reference (off by default)', () => {
  it('top-k routing keeps k experts renormalized, and matches float64', () => {
    const moe = makeMoE({ topK: 2 }, 11, 3);
    const { inputs, out, ref } = runBoth(moe);
    const w = out.routingWeights.arraySync() as number[][];
    for (const row of w) {
      expect(row.filter((x) => x > 0)).toHaveLength(2);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    close(out.routingWeights, ref.map((r) => r.routing), 'routing');
    close(out.output, ref.map((r) => r.output), 'output');
    disposeAll(inputs, out);
    moe.dispose();
  });

  it('topK = E equals dense routing', () => {
    const dense = makeMoE();
    const full = makeMoE({ topK: E });
    const a = runBoth(dense);
    const b = runBoth(full);
    expectClose(b.out.output, a.out.output, { rtol: 1e-6, atol: 1e-7 });
    disposeAll(a.inputs, a.out, b.inputs, b.out);
    dense.dispose();
    full.dispose();
  });

  for (const topK of [null, 2]) {
    it(`load-balancing loss = c·E·Σ f_i·P_i (topK ${topK})`, () => {
      const moe = makeMoE({ topK, auxLossCoefficient: 0.01 }, 11, 3);
      const { inputs, out, ref } = runBoth(moe);
      expect(out.auxLoss!.shape).toEqual([]);
      const expected = 0.01 * loadBalancing64(ref, topK ?? 1);
      expect(out.auxLoss!.dataSync()[0]).toBeCloseTo(expected, 6);
      expect(expected).toBeGreaterThan(0.005);
      disposeAll(inputs, out);
      moe.dispose();
    });
  }

  it('no aux loss unless enabled, and none when the MoE is off', () => {
    const off = makeMoE({ auxLossCoefficient: 0.01, useMoe: false });
    const a = runBoth(off);
    expect(a.out.auxLoss).toBeUndefined();
    disposeAll(a.inputs, a.out);
    off.dispose();
  });
});

describe('ParrotMoE stages', () => {
  it('stage 1 bypasses and freezes; stage 2 runs and trains', () => {
    const moe = makeMoE();
    moe.setStage(1);
    expect(moe.stage).toBe(1);
    expect(moe.trainableVariables()).toHaveLength(0);
    expect(moe.trainableWeights).toHaveLength(0);
    const one = runBoth(moe);
    expect(one.out.output.arraySync()).toEqual(one.inputs.visual.arraySync());
    moe.setStage(2);
    expect(moe.stage).toBe(2);
    expect(moe.trainableVariables()).toHaveLength(1 + 3 * E);
    const two = runBoth(moe);
    close(two.out.output, two.ref.map((r) => r.output), 'stage-2 output');
    expect(() => moe.setStage(3 as 1)).toThrow(/stage must be 1 or 2, got 3/);
    disposeAll(one.inputs, one.out, two.inputs, two.out);
    moe.dispose();
  });

  it('a training step in stage 1 updates nothing (frozen), in stage 2 every parameter', () => {
    const moe = makeMoE();
    const { batch, inputs } = runBoth(moe, 5);
    const loss = () => tf.sum(tf.square(moe.forward(inputs).output)) as tf.Scalar;
    moe.setStage(1);
    expect(moe.trainableVariables()).toHaveLength(0);
    moe.setStage(2);
    const before = readWeights(moe);
    const optimizer = tf.train.sgd(0.1);
    tf.tidy(() => { optimizer.minimize(() => tf.tidy(loss), false, moe.trainableVariables()); });
    const after = readWeights(moe);
    expect(after.gate).not.toEqual(before.gate);
    after.experts.forEach((e, i) => {
      expect(e.gateProj).not.toEqual(before.experts[i].gateProj);
      expect(e.downProj).not.toEqual(before.experts[i].downProj);
    });
    optimizer.dispose();
    disposeAll(inputs);
    void batch;
    moe.dispose();
  });
});

describe('ParrotMoE layer anatomy', () => {
  it('getConfig/fromConfig round-trips and registers under mllm', () => {
    const moe = makeMoE({ moeWeight: 0.25, topK: 2, auxLossCoefficient: 0.5, expertStrategy: 'wide', useResidual: false });
    const config = moe.getConfig();
    expect(config).toMatchObject({ hiddenSize: D, intermediateSize: I, numExperts: E, moeWeight: 0.25, useMoe: true,
      useResidual: false, topK: 2, auxLossCoefficient: 0.5, expertStrategy: 'wide' });
    const registered = tf.serialization.SerializationMap.getMap().classNameMap.ParrotMoE;
    expect(registered?.[0]).toBe(ParrotMoE);
    const copy = ParrotMoE.fromConfig(registered![0] as typeof ParrotMoE, { ...config, name: 'copy' }) as ParrotMoE;
    expect(copy).toBeInstanceOf(ParrotMoE);
    expect({ ...copy.getConfig(), name: config.name }).toEqual(config);
    const dict = moe.stateDict();
    copy.loadStateDict(dict);
    const a = runBoth(moe);
    const b = runBoth(copy);
    expect(b.out.output.arraySync()).toEqual(a.out.output.arraySync());
    disposeAll(a.inputs, a.out, b.inputs, b.out, [...dict.values()]);
    moe.dispose();
    copy.dispose();
  });

  it('apply/call on [visual, text, textMask] returns the output', () => {
    const moe = makeMoE();
    const { inputs, out } = runBoth(moe);
    const y = moe.apply([inputs.visual, inputs.text, inputs.textMask]) as tf.Tensor;
    expect(y.arraySync()).toEqual(out.output.arraySync());
    disposeAll(inputs, out, y);
    moe.dispose();
  });

  it('bad inputs and arguments fail with clear messages', () => {
    const moe = makeMoE();
    const v = tf.zeros([2, N, D]) as tf.Tensor3D;
    const t = tf.zeros([2, 3, D]) as tf.Tensor3D;
    expect(() => moe.forward({ visual: tf.zeros([2, N, 8]) as tf.Tensor3D, text: t })).toThrow(/visual must be \[B, N, 16\].*got \[2, 5, 8\]/);
    expect(() => moe.forward({ visual: v, text: tf.zeros([1, 3, D]) as tf.Tensor3D })).toThrow(/text must be \[2, T, 16\], got \[1, 3, 16\]/);
    expect(() => moe.forward({ visual: v, text: t, textMask: tf.ones([2, 4]) as tf.Tensor2D })).toThrow(/textMask must be \[2, 3\], got \[2, 4\]/);
    expect(() => new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: 0 })).toThrow(/numExperts must be a positive integer, got 0/);
    expect(() => new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, topK: 4 })).toThrow(/topK must be at most numExperts \(3\), got 4/);
    expect(() => new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, moeWeight: NaN })).toThrow(/moeWeight must be a finite number/);
    expect(() => new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, expertStrategy: 'x' as 'wide' })).toThrow(/expertStrategy/);
    tf.dispose([v, t]);
    moe.dispose();
    expect(() => moe.forward({ visual: v, text: t })).toThrow(/disposed/);
  });

  it('fresh init is U(±1/√fan_in) per Linear (PyTorch default, as the reference)', () => {
    setSeed(3);
    const moe = new ParrotMoE({ hiddenSize: 64, intermediateSize: 100, numExperts: 2 });
    const dict = moe.stateDict();
    const check = (key: string, fanIn: number) => {
      const values = Array.from(dict.get(key)!.dataSync() as Float32Array);
      const bound = 1 / Math.sqrt(fanIn);
      const max = values.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(max).toBeLessThanOrEqual(bound);
      expect(max).toBeGreaterThan(0.9 * bound);
      const variance = values.reduce((s, x) => s + x * x, 0) / values.length;
      expect(variance).toBeCloseTo((bound * bound) / 3, 3);
    };
    check('gate.weight', 64);
    check('experts.1.gate_proj.weight', 64);
    check('experts.1.up_proj.weight', 64);
    check('experts.0.down_proj.weight', 100);
    disposeAll([...dict.values()]);
    moe.dispose();
  });

  it('keeps the tensor count flat (forward, call, stage 1, top-k + aux, gradients)', () => {
    const moe = makeMoE({ topK: 2, auxLossCoefficient: 0.1 });
    const batch = randomBatch(5, N, D, LAYOUTS);
    const inputs = batchTensors(batch);
    expectNoLeaks(() => moe.forward(inputs));
    expectNoLeaks(() => moe.apply([inputs.visual, inputs.text, inputs.textMask]));
    expectNoLeaks(() => {
      const { grads, value } = tf.variableGrads(() => {
        const out = moe.forward(inputs);
        return tf.add(tf.sum(out.output), out.auxLoss!) as tf.Scalar;
      }, moe.trainableVariables());
      return [value, grads];
    });
    moe.setStage(1);
    expectNoLeaks(() => moe.forward(inputs));
    expectNoLeaks(() => { disposeAll([...moe.stateDict().values()]); });
    disposeAll(inputs);
    moe.dispose();
  });
});
