/**
 * Gradients of the Wings modules (tfjs, float32, reverse mode) against central differences of the
 * independent float64 code in `reference-math.testutil.ts` — not of the port's own forward — for
 * every parameter and input, each required to be non-zero: `LoRRA`, `WingsRouter` and the combined
 * stage-2 `WingsLayer` (both learners, the router and the update).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, stateDict, toReferenceLayout, type Module } from '@mllm/core';
import { LoRRA } from './lorra.js';
import { WingsRouter } from './router.js';
import { WingsLayer } from './wings-layer.js';
import { buildTextualKeys, buildVisualKeys, type WingsKeyContext } from './learner-keys.js';
import {
  centralDifferences64,
  compareGradients,
  learnerFromFlat,
  learnerStateDict,
  lorra64,
  randomArray,
  randomAttentionProbs,
  randomLearnerWeights,
  randomMatrix,
  router64,
  unflatten,
  type FlatValues,
} from './reference-math.testutil.js';

const H = 8;
const HEADS = 2;
const R = 3;
const THETA = 10000;
const MAX = 10;

/** `[B][L][H]` from a flat array. */
function nest3(flat: number[], B: number, L: number, W: number): number[][][] {
  return Array.from({ length: B }, (_, b) => unflatten(flat.slice(b * L * W, (b + 1) * L * W), L, W));
}

/** tfjs gradients of `loss` in reference layout: the module's parameters (named with `prefix`) and extra input variables. */
function analyticGradients(module: Module, prefix: string, inputs: Record<string, tf.Variable>, loss: () => tf.Scalar): FlatValues {
  const params = module.namedParameters(prefix);
  const variables = [...params.map(([, p]) => p.variable.read() as tf.Variable), ...Object.values(inputs)];
  const { value, grads } = tf.variableGrads(loss, variables);
  const out: FlatValues = new Map();
  for (const [name, p] of params) {
    const g = grads[(p.variable.read() as tf.Variable).name];
    if (!g) {
      out.set(name, new Array<number>(p.variable.read().size).fill(0));
      continue;
    }
    const reference = toReferenceLayout(g, p.layout);
    out.set(name, Array.from(reference.dataSync()));
    if (reference !== g) reference.dispose();
  }
  for (const [name, v] of Object.entries(inputs)) out.set(name, Array.from(grads[v.name].dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

/** The module's weights as flat float64 reference-layout values. */
function flatParameters(module: Module, prefix = ''): FlatValues {
  const dict = stateDict(module, prefix);
  const out: FlatValues = new Map([...dict].map(([name, t]) => [name, Array.from(t.dataSync())]));
  disposeStateDict(dict);
  return out;
}

/** Σ out ⊙ mix in float64. */
function weightedSum(out: number[][][], mix: number[]): number {
  return out.flat(2).reduce((s, v, i) => s + v * mix[i], 0);
}

describe('gradients against float64 central differences of the independent code', () => {
  it('LoRRA: all eight projections, the query stream and the source (key mask, causal by position)', () => {
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA });
    const dict = learnerStateDict(randomLearnerWeights(81, H, R, 0.4));
    learner.loadStateDict(dict);
    disposeStateDict(dict);
    const B = 2, Lq = 4, Lk = 3;
    const queryPositions = [[0, 1, 2, 3], [0, 1, 2, 3]];
    const keyPositions = [[0, 1, 2], [1, 3, 0]];
    const keyMask = [[1, 1, 1], [1, 0, 1]];
    const mix = randomArray(83, B * Lq * H, 1);
    const values: FlatValues = new Map([...flatParameters(learner), ['query', randomArray(84, B * Lq * H)], ['source', randomArray(85, B * Lk * H)]]);
    const numeric = centralDifferences64(
      (v) =>
        weightedSum(
          lorra64(learnerFromFlat(v, '', H, R), HEADS, THETA, {
            query: nest3(v.get('query')!, B, Lq, H),
            source: nest3(v.get('source')!, B, Lk, H),
            queryPositions, keyPositions, keyMask, causalByPosition: true,
          }),
          mix,
        ),
      values,
    );
    const query = tf.variable(tf.tensor3d(values.get('query')!, [B, Lq, H]));
    const source = tf.variable(tf.tensor3d(values.get('source')!, [B, Lk, H]));
    const fixed = [tf.tensor2d(queryPositions, undefined, 'int32'), tf.tensor2d(keyPositions, undefined, 'int32'), tf.tensor2d(keyMask), tf.tensor3d(mix, [B, Lq, H])];
    const before = tf.memory().numTensors;
    const analytic = analyticGradients(learner, '', { query, source }, () =>
      tf.tidy(() => {
        const out = learner.forward({ query, source, queryPositions: fixed[0], keyPositions: fixed[1], keyMask: fixed[2], causalByPosition: true });
        return tf.sum(tf.mul(out, fixed[3])) as tf.Scalar;
      }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(analytic.size).toBe(10);
    compareGradients(analytic, numeric);
    tf.dispose([query, source, ...fixed]);
    learner.dispose();
  });

  it('WingsRouter: weight, bias and the attention probabilities', () => {
    const router = new WingsRouter({ maxLength: MAX });
    const dict = new Map<string, tf.Tensor>([['linear.weight', tf.tensor2d(randomMatrix(91, 2, MAX, 2))], ['linear.bias', tf.tensor1d([0.3, -0.2])]]);
    router.loadStateDict(dict);
    disposeStateDict(dict);
    const B = 2, L = 5;
    const mix = randomArray(93, B * L * 2, 1);
    const values: FlatValues = new Map([...flatParameters(router), ['probs', randomAttentionProbs(94, B, HEADS, L, L).flat(3)]]);
    const numeric = centralDifferences64((v) => {
      const probs = Array.from({ length: B }, (_, b) => nest3(v.get('probs')!.slice(b * HEADS * L * L, (b + 1) * HEADS * L * L), HEADS, L, L));
      return weightedSum(router64(unflatten(v.get('linear.weight')!, 2, MAX), v.get('linear.bias')!, probs), mix);
    }, values);
    const probs = tf.variable(tf.tensor4d(values.get('probs')!, [B, HEADS, L, L]));
    const mixT = tf.tensor3d(mix, [B, L, 2]);
    const analytic = analyticGradients(router, '', { probs }, () =>
      tf.tidy(() => {
        const { visual, textual } = router.forward(probs);
        return tf.sum(tf.mul(tf.concat([visual, textual], -1), mixT)) as tf.Scalar;
      }),
    );
    compareGradients(analytic, numeric);
    tf.dispose([probs, mixT]);
    router.dispose();
  });

  it('WingsLayer stage 2 (clean keys): both learners, the router, the residual, the embeddings and the visual tokens', () => {
    const layer = new WingsLayer({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: THETA, stage: 2, routerMaxLength: MAX });
    const dict = new Map<string, tf.Tensor>([
      ...learnerStateDict(randomLearnerWeights(101, H, R, 0.4), 'attn_pool.'),
      ...learnerStateDict(randomLearnerWeights(111, H, R, 0.4), 'attn_t_pool.'),
      ['reweight_module.linear.weight', tf.tensor2d(randomMatrix(121, 2, MAX, 2))],
      ['reweight_module.linear.bias', tf.tensor1d([0.1, -0.3])],
    ]);
    layer.loadStateDict(dict);
    disposeStateDict(dict);
    // Sample 0: text, image (2 tokens at [1, 3)), text; sample 1: text only, one right-padding token
    // (host convention: positions keep counting on padding, which is masked out of the keys).
    const B = 2, L = 5, N = 2;
    const positions = [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]];
    const textMask = [[1, 0, 0, 1, 1], [1, 1, 1, 1, 0]];
    const probsValues = randomAttentionProbs(131, B, HEADS, L, L);
    const mix = randomArray(133, B * L * H, 1);
    const values: FlatValues = new Map([
      ...flatParameters(layer),
      ['residual', randomArray(134, B * L * H)],
      ['embeddings', randomArray(135, B * L * H)],
      ['visualTokens', randomArray(136, N * H)],
    ]);
    const numeric = centralDifferences64((v) => {
      const residual = nest3(v.get('residual')!, B, L, H);
      const embeddings = nest3(v.get('embeddings')!, B, L, H);
      const tokens = unflatten(v.get('visualTokens')!, N, H);
      const visual = lorra64(learnerFromFlat(v, 'attn_pool.', H, R), HEADS, THETA, {
        query: [residual[0]], source: [tokens], queryPositions: [positions[0]], keyPositions: [[1, 2]],
      })[0];
      const textual = lorra64(learnerFromFlat(v, 'attn_t_pool.', H, R), HEADS, THETA, {
        query: residual, source: embeddings, queryPositions: positions, keyPositions: positions, keyMask: textMask, causalByPosition: true,
      });
      const gates = router64(unflatten(v.get('reweight_module.linear.weight')!, 2, MAX), v.get('reweight_module.linear.bias')!, probsValues);
      const out = residual.map((rows, b) =>
        rows.map((row, t) => row.map((x, i) => x + (b === 0 ? gates[b][t][0] * visual[t][i] : 0) + gates[b][t][1] * textual[b][t][i])),
      );
      return weightedSum(out, mix);
    }, values);

    const residual = tf.variable(tf.tensor3d(values.get('residual')!, [B, L, H]));
    const embeddings = tf.variable(tf.tensor3d(values.get('embeddings')!, [B, L, H]));
    const visualTokens = tf.variable(tf.tensor3d(values.get('visualTokens')!, [1, N, H]));
    const fixed = {
      positions: tf.tensor2d(positions, undefined, 'int32'),
      attentionMask: tf.tensor2d([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
      textMask: tf.tensor2d(textMask),
      hasImage: tf.tensor1d([1, 0]),
      probs: tf.tensor4d(probsValues),
      mix: tf.tensor3d(mix, [B, L, H]),
    };
    const before = tf.memory().numTensors;
    const analytic = analyticGradients(layer, '', { residual, embeddings, visualTokens }, () =>
      tf.tidy(() => {
        const ctx: WingsKeyContext = {
          inputEmbeddings: embeddings as unknown as tf.Tensor3D,
          positions: fixed.positions,
          attentionMask: fixed.attentionMask,
          textMask: fixed.textMask,
          imageSpans: [[{ imageIndex: 0, start: 1, length: N }], []],
          hasImage: fixed.hasImage,
          visualTokens: visualTokens as unknown as tf.Tensor3D,
          isPrefill: true,
        };
        const out = layer.forward({
          residual: residual as unknown as tf.Tensor3D,
          positions: fixed.positions,
          attentionProbs: fixed.probs,
          hasImage: fixed.hasImage,
          visual: buildVisualKeys(ctx),
          textual: buildTextualKeys(ctx),
        });
        return tf.sum(tf.mul(out, fixed.mix)) as tf.Scalar;
      }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(analytic.size).toBe(18 + 3);
    compareGradients(analytic, numeric);
    tf.dispose([residual, embeddings, visualTokens, ...Object.values(fixed)]);
    layer.dispose();
  });
});
