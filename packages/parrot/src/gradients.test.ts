/**
 * Gradients of every weight and input against central differences of the independent float64
 * re-computation (step 1e-6 in float64, so the numerical side is accurate to ~1e-9).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ParrotMoE, type ParrotMoEArgs } from './parrot-moe.js';
import { loadBalancing64, parrotMoE64, type Float64Weights, type Matrix } from './testing/float64-moe.js';
import { randomBatch, randomMatrix, randomWeights, readWeights, weightsToStateDict, type Batch } from './testing/fixtures.js';
import { createRng } from '@mllm/core';
import { checkGradients, checkVariableGradients, skipOnBackend } from '@mllm/core/testing';

const D = 8;
const I = 6;
const E = 3;
const N = 4;
const LAYOUTS = [
  [1, 1, 1, 1, 1],
  [1, 0, 1, 1, 0],
];

interface Probes {
  output: Matrix[]; // [B][N][D]
  routing: Matrix; // [B][E]
  attention: Matrix; // [B][T]
}

/** The scalar both sides differentiate: Σ out⊙R₁ + Σ routing⊙R₂ + Σ attention⊙R₃ (+ aux loss). */
function loss64(moe: ParrotMoE, w: Float64Weights, batch: Batch, probes: Probes): number {
  const options = { alpha: moe.moeWeight, useMoe: moe.useMoe, useResidual: moe.useResidual, topK: moe.topK };
  const results = batch.visual.map((v, b) => {
    const text = batch.paddedText[b].filter((_, t) => batch.mask[b][t] === 1);
    return parrotMoE64(v, text, w, options);
  });
  let total = 0;
  results.forEach((r, b) => {
    r.output.forEach((row, n) => row.forEach((x, d) => (total += x * probes.output[b][n][d])));
    r.routing.forEach((x, e) => (total += x * probes.routing[b][e]));
    let k = 0;
    batch.mask[b].forEach((m, t) => { if (m) total += r.attention[k++] * probes.attention[b][t]; });
  });
  if (moe.auxLossCoefficient > 0) total += moe.auxLossCoefficient * loadBalancing64(results, moe.topK ?? 1);
  return total;
}

/** Central differences of `f` w.r.t. every entry of `m` (restored afterwards). */
function numericGradient(m: Matrix, f: () => number, h = 1e-6): Matrix {
  return m.map((row) => row.map((_, j) => {
    const x = row[j];
    row[j] = x + h;
    const plus = f();
    row[j] = x - h;
    const minus = f();
    row[j] = x;
    return (plus - minus) / (2 * h);
  }));
}

function compare(analytic: number[][], numeric: number[][], label: string, mustBeNonZero = true): void {
  const flatA = analytic.flat();
  const flatN = numeric.flat();
  const scale = Math.max(...flatN.map(Math.abs));
  if (mustBeNonZero) expect(scale, `${label}: gradient is not trivially zero`).toBeGreaterThan(1e-6);
  flatN.forEach((g, i) => {
    const allowed = 1e-3 * scale + 1e-3 * Math.abs(g) + 1e-7;
    if (!(Math.abs(flatA[i] - g) <= allowed)) {
      throw new Error(`${label}[${i}]: analytic ${flatA[i]} vs numeric ${g} (allowed ${allowed})`);
    }
  });
}

const CASES: Array<{ label: string; args: Partial<ParrotMoEArgs>; freezeExperts?: boolean }> = [
  { label: 'dense routing, α = 0.1, separate experts', args: { moeWeight: 0.1, expertStrategy: 'separate' } },
  // separate's backward skips the kernel products when no expert is trainable
  { label: 'frozen experts (router and inputs only), separate experts', args: { expertStrategy: 'separate' }, freezeExperts: true },
  { label: 'top-2 routing + aux loss, α = 1, wide experts', args: { moeWeight: 1, topK: 2, auxLossCoefficient: 0.5, expertStrategy: 'wide' } },
  { label: 'dense routing, no residual, stacked experts', args: { useResidual: false, expertStrategy: 'stacked' } },
];

describe('ParrotMoE gradients vs float64 central differences', () => {
  for (const { label, args, freezeExperts } of CASES) {
    it(label, () => {
      const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, ...args });
      const dict = weightsToStateDict(randomWeights(21, D, I, E, 2));
      moe.loadStateDict(dict);
      tf.dispose([...dict.values()]);
      if (freezeExperts) for (const expert of moe.experts) expert.setTrainable(false);
      const batch = randomBatch(8, N, D, LAYOUTS);
      const rng = createRng(99);
      const T = LAYOUTS[0].length;
      const probes: Probes = {
        output: batch.visual.map(() => randomMatrix(rng, N, D)),
        routing: randomMatrix(rng, 2, E),
        attention: randomMatrix(rng, 2, T),
      };

      // analytic (tfjs, float32)
      const visual = tf.tidy(() => tf.variable(tf.tensor3d(batch.visual), true, 'visual_input'));
      const text = tf.tidy(() => tf.variable(tf.tensor3d(batch.paddedText), true, 'text_input'));
      const textMask = tf.tensor2d(batch.mask);
      const parameters = moe.namedParameters();
      const { value, grads } = tf.variableGrads(() => {
        const out = moe.forward({ visual: visual as unknown as tf.Tensor3D, text: text as unknown as tf.Tensor3D, textMask });
        let total = tf.add(
          tf.add(tf.sum(tf.mul(out.output, tf.tensor3d(probes.output))), tf.sum(tf.mul(out.routingWeights, tf.tensor2d(probes.routing)))),
          tf.sum(tf.mul(out.textAttention, tf.tensor2d(probes.attention))),
        );
        if (out.auxLoss) total = tf.add(total, out.auxLoss);
        return total as tf.Scalar;
      }, [...moe.trainableVariables(), visual, text]);

      const w = readWeights(moe);
      const f = () => loss64(moe, w, batch, probes);
      expect(value.dataSync()[0]).toBeCloseTo(f(), 4);

      // weights, in the reference layout (internal 'linear' kernels are [in, out]: transpose)
      const matrices: Record<string, Matrix> = { 'gate.weight': w.gate };
      w.experts.forEach((e, i) => {
        matrices[`experts.${i}.gate_proj.weight`] = e.gateProj;
        matrices[`experts.${i}.up_proj.weight`] = e.upProj;
        matrices[`experts.${i}.down_proj.weight`] = e.downProj;
      });
      expect(parameters.map(([name]) => name).sort()).toEqual(Object.keys(matrices).sort());
      for (const [name, parameter] of parameters) {
        const variableName = (parameter.variable.read() as tf.Variable).name;
        const grad = grads[variableName];
        if (freezeExperts && name.startsWith('experts.')) {
          expect(grad, `${name} is frozen: no gradient asked for`).toBeUndefined();
          continue;
        }
        const reference = parameter.layout === 'linear' ? tf.transpose(grad) : grad.clone();
        compare(reference.arraySync() as number[][], numericGradient(matrices[name], f), name);
        reference.dispose();
      }
      // inputs: visual per sample, text per sample (masked positions: exactly zero gradient)
      const visualGrad = grads[visual.name].arraySync() as number[][][];
      const textGrad = grads[text.name].arraySync() as number[][][];
      batch.visual.forEach((v, b) => compare(visualGrad[b], numericGradient(v, f), `visual[${b}]`));
      batch.paddedText.forEach((x, b) => {
        compare(textGrad[b], numericGradient(x, f), `text[${b}]`);
        batch.mask[b].forEach((m, t) => { if (!m) expect(Math.max(...textGrad[b][t].map(Math.abs))).toBeLessThan(1e-12); });
      });
      tf.dispose([value, grads as unknown as tf.Tensor[], visual, text, textMask].flat());
      moe.dispose();
    });
  }
});

describe('ParrotMoE gradients vs central differences on the test backend (core checkGradients)', () => {
  // The float64 central-difference tests above run on every backend; this float32 one needs ~500
  // forward evaluations with a synchronous read each, ~1 s apiece on software WebGPU.
  it.skipIf(skipOnBackend(['webgpu'], 'about 1 s per forward evaluation on software WebGPU (SwiftShader)'))(
    'inputs (visual, text) and every weight, top-2 routing with aux loss', () => {
    const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, topK: 2, auxLossCoefficient: 0.5 });
    const dict = weightsToStateDict(randomWeights(23, D, I, E, 2));
    moe.loadStateDict(dict);
    tf.dispose([...dict.values()]);
    const batch = randomBatch(13, N, D, LAYOUTS);
    const visual = tf.tensor3d(batch.visual);
    const text = tf.tensor3d(batch.paddedText);
    const textMask = tf.tensor2d(batch.mask);
    const probe = tf.randomNormal([2, N, D], 0, 1, 'float32', 3);
    const scalar = (v: tf.Tensor, t: tf.Tensor) => {
      const out = moe.forward({ visual: v as tf.Tensor3D, text: t as tf.Tensor3D, textMask });
      return tf.add(tf.sum(tf.mul(out.output, probe)), out.auxLoss!);
    };
    const inputs = checkGradients(scalar, [visual, text], { epsilon: 1e-2, rtol: 2e-2, atol: 2e-3, label: 'inputs' });
    expect(inputs.checked).toBe(visual.size + text.size);
    const weights = checkVariableGradients(() => scalar(visual, text), moe.trainableVariables(),
      { epsilon: 1e-2, rtol: 2e-2, atol: 2e-3, maxElementsPerInput: 12, label: 'weights' });
    expect(weights.checked).toBe(12 * (1 + 3 * E));
    tf.dispose([visual, text, textMask, probe]);
    moe.dispose();
  });
});
