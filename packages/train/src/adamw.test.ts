import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, loadStateDict, setSeed } from '@mllm/core';
import { AdamW, Trainer, cosineScheduleWithWarmup } from './index.js';
import { fixedMatrix } from './test-fixtures.js';

/** PyTorch `torch.optim.AdamW` (single-tensor path) in float64, elementwise. */
function referenceAdamWStep(
  p: Float64Array, m: Float64Array, v: Float64Array, g: ArrayLike<number>, t: number,
  h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): void {
  const bc1 = 1 - h.beta1 ** t;
  const bc2 = 1 - h.beta2 ** t;
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + h.eps;
    p[i] -= (h.lr / bc1) * (m[i] / denom);
  }
}

function flat(t: tf.Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('AdamW', () => {
  it('matches a float64 PyTorch AdamW reference over several steps (decay, bias correction, changing lr)', () => {
    setSeed(11);
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    const h = { lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
    const optimizer = new AdamW(layer, { lr: h.lr, betas: [h.beta1, h.beta2], eps: h.eps, weightDecay: h.weightDecay });
    const names = ['weight', 'bias'] as const;
    const values = { weight: () => layer.kernelValue, bias: () => layer.biasValue! };
    const ref = Object.fromEntries(names.map((n) => {
      const p = flat(values[n]());
      return [n, { p, m: new Float64Array(p.length), v: new Float64Array(p.length) }];
    })) as Record<(typeof names)[number], { p: Float64Array; m: Float64Array; v: Float64Array }>;
    const factors = [1, 0.5, 0.25, 1, 0.75];
    for (const [k, factor] of factors.entries()) {
      const gW = fixedMatrix(3, 2, 100 + k); // internal layout [in, out]
      const gB = fixedMatrix(1, 2, 200 + k)[0];
      const grads = new Map<string, tf.Tensor>([['weight', tf.tensor2d(gW)], ['bias', tf.tensor1d(gB)]]);
      optimizer.step(grads, factor);
      grads.forEach((g) => g.dispose());
      referenceAdamWStep(ref.weight.p, ref.weight.m, ref.weight.v, gW.flat(), k + 1, { ...h, lr: h.lr * factor });
      referenceAdamWStep(ref.bias.p, ref.bias.m, ref.bias.v, gB, k + 1, { ...h, lr: h.lr * factor });
      for (const n of names) expect(maxAbsDiff(values[n]().dataSync(), ref[n].p)).toBeLessThan(2e-6);
    }
    expect(optimizer.stepCount('weight')).toBe(5);
    optimizer.dispose();
    layer.dispose();
  });

  it('skips parameters without a gradient entirely (no decay, no state), like PyTorch', () => {
    const layer = new Linear({ inFeatures: 2, outFeatures: 2 });
    const optimizer = new AdamW(layer, { lr: 0.1, weightDecay: 0.5 });
    const before = layer.kernelValue.arraySync();
    const grads = new Map<string, tf.Tensor>([['bias', tf.ones([2])]]);
    optimizer.step(grads);
    grads.get('bias')!.dispose();
    expect(layer.kernelValue.arraySync()).toEqual(before);
    expect(optimizer.stepCount('weight')).toBe(0);
    expect(optimizer.stepCount('bias')).toBe(1);
    expect([...optimizer.stateDict().keys()].sort()).toEqual(['bias.exp_avg', 'bias.exp_avg_sq', 'bias.step']);
    optimizer.dispose();
    layer.dispose();
  });

  it('trainer steps (warmup+cosine, clipping) follow a float64 reference of the whole update', async () => {
    setSeed(5);
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    const x = fixedMatrix(4, 3, 1);
    const y = fixedMatrix(4, 2, 2).map((r) => r.map((v) => 3 * v));
    const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const maxNorm = 0.5;
    const schedule = cosineScheduleWithWarmup({ warmupSteps: 2, totalSteps: 6 });
    const optimizer = new AdamW(layer, { lr: h.lr, weightDecay: h.weightDecay });
    const trainer = new Trainer({ model: layer, optimizer, schedule, maxGradNorm: maxNorm, progress: false });
    // float64 reference state; W kept as [out, in] like PyTorch.
    const W = new Float64Array(6);
    const Wt = layer.kernelValue.arraySync() as number[][]; // [in, out]
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) W[o * 3 + i] = Wt[i][o];
    const b = Float64Array.from(layer.biasValue!.dataSync());
    const mW = new Float64Array(6), vW = new Float64Array(6), mB = new Float64Array(2), vB = new Float64Array(2);
    const xs = tf.tensor2d(x);
    const ys = tf.tensor2d(y);
    const metrics = await trainer.fit({ steps: 6, batches: () => null, lossFn: () => tf.mean(tf.square(tf.sub(layer.forward(xs), ys))) as tf.Scalar });
    for (let k = 0; k < 6; k++) {
      // loss = mean_{b,o} r², r = x·Wᵀ + b − y; dL/dW[o,i] = 2/(B·O) Σ_b r[b,o]·x[b,i]
      const gW = new Float64Array(6), gB = new Float64Array(2);
      let loss = 0;
      for (let s = 0; s < 4; s++) for (let o = 0; o < 2; o++) {
        let r = b[o] - y[s][o];
        for (let i = 0; i < 3; i++) r += W[o * 3 + i] * x[s][i];
        loss += (r * r) / 8;
        for (let i = 0; i < 3; i++) gW[o * 3 + i] += (2 / 8) * r * x[s][i];
        gB[o] += (2 / 8) * r;
      }
      let sq = 0;
      for (const g of [...gW, ...gB]) sq += g * g;
      const norm = Math.sqrt(sq);
      const coef = Math.min(1, maxNorm / (norm + 1e-6));
      expect(metrics[k].loss).toBeCloseTo(loss, 5);
      expect(metrics[k].gradNorm).toBeCloseTo(norm, 5);
      const lr = h.lr * schedule.factor(k);
      expect(metrics[k].lr).toBeCloseTo(lr, 12);
      referenceAdamWStep(W, mW, vW, gW.map((g) => g * coef), k + 1, { ...h, lr });
      referenceAdamWStep(b, mB, vB, gB.map((g) => g * coef), k + 1, { ...h, lr });
    }
    expect(metrics[0].lr).toBe(0); // HF warmup: the first update uses factor 0
    const finalWt = layer.kernelValue.arraySync() as number[][];
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) expect(Math.abs(finalWt[i][o] - W[o * 3 + i])).toBeLessThan(5e-6);
    expect(maxAbsDiff(layer.biasValue!.dataSync(), b)).toBeLessThan(5e-6);
    xs.dispose();
    ys.dispose();
    optimizer.dispose();
    layer.dispose();
  });

  it('state dict round-trips by parameter name (reference layout) and continues bitwise', () => {
    setSeed(3);
    const a = new Linear({ inFeatures: 3, outFeatures: 2 });
    const optA = new AdamW(a, { lr: 0.01 });
    const grad = (k: number) => new Map<string, tf.Tensor>([['weight', tf.tensor2d(fixedMatrix(3, 2, k))], ['bias', tf.tensor1d(fixedMatrix(1, 2, k + 50)[0])]]);
    const run = (opt: AdamW, k: number) => { const g = grad(k); opt.step(g); g.forEach((t) => t.dispose()); };
    run(optA, 1);
    run(optA, 2);
    const state = optA.stateDict();
    expect(state.get('weight.exp_avg')!.shape).toEqual([2, 3]); // [out, in] like the model's state dict
    expect(state.get('weight.step')!.dtype).toBe('int32');
    expect(state.get('weight.step')!.dataSync()[0]).toBe(2);

    const b = new Linear({ inFeatures: 3, outFeatures: 2 });
    loadStateDict(b, [['weight', tf.transpose(a.kernelValue)], ['bias', a.biasValue!.clone()]]);
    const optB = new AdamW(b, { lr: 0.01 });
    optB.loadStateDict(state);
    state.forEach((t) => t.dispose());
    run(optA, 3);
    run(optB, 3);
    expect(Array.from(b.kernelValue.dataSync())).toEqual(Array.from(a.kernelValue.dataSync()));
    expect(Array.from(b.biasValue!.dataSync())).toEqual(Array.from(a.biasValue!.dataSync()));
    for (const o of [optA, optB]) o.dispose();
    a.dispose();
    b.dispose();
  });

  it('rejects a bad state dict with every problem named, changing nothing', () => {
    const layer = new Linear({ inFeatures: 3, outFeatures: 2 });
    const optimizer = new AdamW(layer);
    const g = new Map<string, tf.Tensor>([['bias', tf.ones([2])]]);
    optimizer.step(g);
    g.get('bias')!.dispose();
    const bad = new Map<string, tf.Tensor>([
      ['weight.exp_avg', tf.zeros([3, 2])],
      ['weight.exp_avg_sq', tf.zeros([2, 3])],
      ['weight.step', tf.scalar(1, 'int32')],
      ['nope.exp_avg', tf.zeros([1])],
      ['bias.exp_avg', tf.zeros([2])],
      ['bias.momentum', tf.zeros([2])],
    ]);
    let message = '';
    try { optimizer.loadStateDict(bad); } catch (e) { message = String(e); }
    expect(message).toMatch(/size mismatch for 'weight.exp_avg': expected \[2,3\], got \[3,2\]/);
    expect(message).toMatch(/'nope.exp_avg' names no parameter/);
    expect(message).toMatch(/unexpected key 'bias.momentum'/);
    expect(message).toMatch(/state of 'bias' lacks 'bias.exp_avg_sq', 'bias.step'/);
    expect(optimizer.stepCount('bias')).toBe(1);
    bad.forEach((t) => t.dispose());
    optimizer.dispose();
    layer.dispose();
  });

  it('optimizes modules attached after it was built (hooks), with their group settings', () => {
    class Host extends Module {
      static readonly className = 'Host';
      constructor() {
        super({});
        this.addModule('lm', new Linear({ inFeatures: 2, outFeatures: 2 }));
      }
      attach(name: string, module: Module): void {
        this.addModule(name, module);
      }
    }
    const host = new Host();
    const optimizer = new AdamW(host, { lr: 1e-3, weightDecay: 0, groups: [{ name: 'hooks', params: [/^hooks\./], lr: 0.5 }], allowUnmatched: true });
    const learner = new Linear({ inFeatures: 2, outFeatures: 1, bias: false });
    host.attach('hooks.0', learner);
    const before = Array.from(learner.kernelValue.dataSync());
    const grads = new Map<string, tf.Tensor>([['hooks.0.weight', tf.tensor2d([[1], [-1]])]]);
    optimizer.step(grads);
    grads.forEach((g) => g.dispose());
    const after = Array.from(learner.kernelValue.dataSync());
    // first Adam step: Δ = −lr·g/(|g| + eps) ≈ −0.5·sign(g)
    expect(after[0] - before[0]).toBeCloseTo(-0.5, 6);
    expect(after[1] - before[1]).toBeCloseTo(0.5, 6);
    expect(optimizer.learningRate('hooks.0.weight')).toBe(0.5);
    optimizer.dispose();
    host.dispose();
  });

  it('validates options and gradients, and leaks no tensors across steps', () => {
    const layer = new Linear({ inFeatures: 2, outFeatures: 2 });
    expect(() => new AdamW(layer, { betas: [0.9, 1] })).toThrow(/betas\[1\] must be in \[0, 1\), got 1/);
    expect(() => new AdamW(layer, { lr: -1 })).toThrow(/lr must be a finite number >= 0, got -1/);
    const optimizer = new AdamW(layer);
    const wrong = new Map<string, tf.Tensor>([['weight', tf.zeros([3, 2])]]);
    expect(() => optimizer.step(wrong)).toThrow(/gradient for 'weight' has shape \[3,2\], expected \[2,2\]/);
    const unknown = new Map<string, tf.Tensor>([['fc.weight', tf.zeros([2, 2])]]);
    expect(() => optimizer.step(unknown)).toThrow(/unknown parameter 'fc.weight'/);
    const grads = new Map<string, tf.Tensor>([['weight', tf.ones([2, 2])], ['bias', tf.ones([2])]]);
    optimizer.step(grads); // creates the state
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) optimizer.step(grads, 0.5);
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before - 4);
    for (const m of [wrong, unknown, grads]) m.forEach((t) => t.dispose());
    layer.dispose();
  });
});
