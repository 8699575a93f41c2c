/**
 * Poisoned inputs against the Wings modules (every backend): NaN/Inf at padding keys of a LoRRA
 * learner never reach its output (same bits as zeros there), a text-only sample's visual branch
 * cannot leak into it, masks must be 0/1, and wrong kinds of argument to LoRRA, WingsLayer,
 * WingsRouter, attachWings and injectWings are errors naming the argument, the expected and the actual value.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { setSeed } from '@mllm/core';
import { tinyHost } from '@mllm/models/testing';
import { LoRRA, LowRankProjection, WingsLayer, WingsRouter, attachWings, injectWings } from './index.js';

const B = 2, Lq = 3, Lk = 5, H = 8;
const keyMaskValues = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]; // [B, Lk]
const padding = (b: number, j: number) => keyMaskValues[b * Lk + j] === 0;

/** A learner with every weight random (a fresh one adds exactly 0: its up-projections start at 0). */
function trainedLearner(): LoRRA {
  setSeed(11);
  const learner = new LoRRA({ hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000 });
  learner.namedParameters().forEach(([, p], i) => {
    const shape = p.variable.read().shape;
    p.variable.write(tf.tidy(() => tf.randomNormal(shape, 0, 0.3, 'float32', 100 + i)));
  });
  return learner;
}

const query = () => tf.tensor3d(Array.from({ length: B * Lq * H }, (_, i) => Math.sin(i * 0.3)), [B, Lq, H]);
const queryPositions = () => tf.tensor2d([[2, 3, 4], [1, 2, 3]], [B, Lq], 'int32');

/** Keys with `value` in every feature (and the position) of the padding keys. */
function keys(value: number): { source: tf.Tensor3D; keyPositions: tf.Tensor2D } {
  const source = Array.from({ length: B * Lk * H }, (_, i) => Math.cos(i * 0.17));
  const positions = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4];
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < Lk; j++) {
      if (!padding(b, j)) continue;
      for (let d = 0; d < H; d++) source[(b * Lk + j) * H + d] = value;
      positions[b * Lk + j] = value;
    }
  }
  return { source: tf.tensor3d(source, [B, Lk, H]), keyPositions: tf.tensor2d(positions, [B, Lk]) };
}

describe('Wings modules with poisoned inputs', () => {
  it('LoRRA: NaN/Inf at padding keys (features and positions) change no output bit; fresh learners stay exactly 0', async () => {
    const learner = trainedLearner();
    const keyMask = tf.tensor2d(keyMaskValues, [B, Lk]);
    const run = async (value: number, options: { causal?: boolean; uniform?: boolean; model?: LoRRA } = {}) => {
      const q = query(), qp = queryPositions(), k = keys(value);
      const out = (options.model ?? learner).forward({
        query: q, source: k.source, queryPositions: qp, keyPositions: k.keyPositions, keyMask,
        causalByPosition: options.causal, fullyMaskedRows: options.uniform ? 'uniform' : 'zero',
      });
      const values = Array.from(await out.data());
      tf.dispose([q, qp, k.source, k.keyPositions, out]);
      return values;
    };
    for (const options of [{}, { causal: true }, { uniform: true }]) {
      const expected = await run(0, options);
      expect(expected.every(Number.isFinite)).toBe(true);
      for (const poison of [NaN, Infinity, -Infinity]) expect(await run(poison, options), `${poison} ${JSON.stringify(options)}`).toEqual(expected);
    }
    setSeed(12);
    const fresh = new LoRRA({ hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000 });
    expect(await run(NaN, { model: fresh })).toEqual(new Array(B * Lq * H).fill(0));
    fresh.dispose();
    keyMask.dispose();
    learner.dispose();
  });

  it('masks must hold only 0 and 1: LoRRA keyMask/attendMask and WingsLayer hasImage', () => {
    const learner = trainedLearner();
    const q = query(), qp = queryPositions(), k = keys(0);
    for (const [bad, shown] of [[NaN, 'NaN'], [0.5, '0.5']] as const) {
      const values = keyMaskValues.slice();
      values[7] = bad;
      const keyMask = tf.tensor2d(values, [B, Lk]);
      expect(() => learner.forward({ query: q, source: k.source, queryPositions: qp, keyPositions: k.keyPositions, keyMask }))
        .toThrow(`LoRRA: keyMask must hold only 0 and 1 (or be bool), got ${shown} at [1, 2]`);
      const attendValues = new Array(B * Lq * Lk).fill(1);
      attendValues[7] = bad; // [0, 1, 2]
      const attendMask = tf.tensor3d(attendValues, [B, Lq, Lk]);
      expect(() => learner.forward({ query: q, source: k.source, queryPositions: qp, keyPositions: k.keyPositions, attendMask }))
        .toThrow(`LoRRA: attendMask must hold only 0 and 1 (or be bool), got ${shown} at [0, 1, 2]`);
      tf.dispose([keyMask, attendMask]);
    }
    setSeed(3);
    const layer = new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLength: 16 });
    const residual = tf.zeros([B, Lk, H]) as tf.Tensor3D;
    const positions = tf.tensor2d([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], [B, Lk], 'int32');
    const hasImage = tf.tensor1d([1, NaN]);
    const visual = { source: k.source, positions: k.keyPositions, keyMask: tf.tensor2d(keyMaskValues, [B, Lk]), causalByPosition: false };
    expect(() => layer.forward({ residual, positions, attentionProbs: null, hasImage, visual, textual: null }))
      .toThrow('WingsLayer.forward: hasImage must hold only 0 and 1 (or be bool), got NaN at [1]');
    tf.dispose([q, qp, k.source, k.keyPositions, residual, positions, hasImage, visual.keyMask]);
    layer.dispose();
    learner.dispose();
  });

  it('WingsLayer: a text-only sample (hasImage 0) is untouched even when its visual keys are all NaN and unmasked', async () => {
    setSeed(3);
    const layer = new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLength: 16 });
    layer.visualLearner.namedParameters().forEach(([, p], i) => p.variable.write(tf.tidy(() => tf.randomNormal(p.variable.read().shape, 0, 0.3, 'float32', i))));
    const residualValues = Array.from({ length: B * Lk * H }, (_, i) => Math.sin(i));
    const residual = tf.tensor3d(residualValues, [B, Lk, H]);
    const positions = tf.tensor2d([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], [B, Lk], 'int32');
    const source = tf.tidy(() => tf.concat([tf.ones([1, Lk, H]), tf.fill([1, Lk, H], NaN)], 0)) as tf.Tensor3D;
    const visual = { source, positions, keyMask: tf.ones([B, Lk]) as tf.Tensor2D, causalByPosition: false };
    const out = layer.forward({ residual, positions, attentionProbs: null, hasImage: tf.tensor1d([1, 0]), visual, textual: null });
    const values = Array.from(await out.data());
    expect(values.slice(Lk * H)).toEqual(Array.from(Float32Array.from(residualValues.slice(Lk * H))));
    expect(values.slice(0, Lk * H).every(Number.isFinite)).toBe(true);
    tf.dispose([residual, positions, source, visual.keyMask, out]);
    layer.dispose();
  });

  it('wrong kinds of argument: errors naming the argument, the expected and the actual value', () => {
    const cases: Array<[() => unknown, string | RegExp]> = [
      [() => new LoRRA(undefined as never), 'LoRRA: args must be an object, got undefined'],
      [() => new LoRRA({ hiddenSize: '64', numHeads: 2, rank: 3, ropeTheta: 10000 } as never), 'LoRRA: hiddenSize must be a positive integer, got the string "64"'],
      [() => new LoRRA({ hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, initStd: NaN }), 'LoRRA: initStd must be a finite number, got NaN'],
      [() => new LoRRA({ hiddenSize: H, numHead: 2, rank: 3, ropeTheta: 10000 } as never), /LoRRA: unknown option "numHead" \(did you mean "numHeads"\?\)/],
      [() => trainedLearner().forward(undefined as never), 'LoRRA.forward: inputs must be an object, got undefined'],
      [() => trainedLearner().forward({ query: [[1]] } as never), 'LoRRA: query must be a tf.Tensor, got a plain array (length 1)'],
      [() => new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000 } as never), 'WingsLayer: routerMaxLength must be a positive integer, got undefined'],
      [() => new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLength: 8, initStd: NaN }), 'LoRRA: initStd must be a finite number, got NaN'],
      [() => new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLen: 8 } as never), /WingsLayer: unknown option "routerMaxLen" \(did you mean "routerMaxLength"\?\)/],
      [() => new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLength: 8 }).forward(undefined as never), 'WingsLayer.forward: inputs must be an object, got undefined'],
      [() => new WingsLayer({ stage: 1, hiddenSize: H, numHeads: 2, rank: 3, ropeTheta: 10000, routerMaxLength: 8 }).forward({ residual: tf.zeros([1, 2, H]), positions: tf.zeros([1, 2]), hasImage: [1] } as never),
        'WingsLayer.forward: hasImage must be a tf.Tensor, got a plain array (length 1)'],
      [() => new LowRankProjection(undefined as never), 'LowRankProjection: args must be an object, got undefined'],
      [() => new LowRankProjection({ inFeatures: H, outFeatures: H, rank: 2, initStd: NaN }), 'LowRankProjection: initStd must be a finite number, got NaN'],
      [() => new WingsRouter(undefined as never), 'WingsRouter: args must be an object, got undefined'],
      [() => new WingsRouter({ maxLength: '16' } as never), 'WingsRouter: maxLength must be a positive integer, got the string "16"'],
      [() => new WingsRouter({ maxLength: 16 }).forward(undefined as never), 'WingsRouter.forward: attentionProbs must be a tf.Tensor (float32), got undefined'],
    ];
    for (const [fn, message] of cases) expect(fn, String(message)).toThrow(message);

    const host = tinyHost(1, { hiddenSize: H, maxLength: 64 });
    expect(() => injectWings(undefined as never, { stage: 1, rank: 2 })).toThrow(/injectWings: host must be a model implementing ModuleHost.*got undefined/);
    expect(() => attachWings(null as never, { stage: 1, rank: 2 })).toThrow(/attachWings: host must be a model implementing ModuleHost.*got null/);
    expect(() => attachWings(host, null as never)).toThrow('WingsConfig: config must be an object, got null');
    expect(() => attachWings(host, { stage: 1, rank: 0 })).toThrow('WingsConfig: rank must be a positive integer, got 0');
    expect(() => attachWings(host, { stage: 1, rank: 2, layers: 'some' as never })).toThrow("WingsConfig: layers must be an index list, a RegExp or 'all', got some");
    expect(() => injectWings(host, undefined as never)).toThrow('WingsConfig: config must be an object, got undefined');
    expect(() => injectWings(host, { stage: 1, rank: 2, visualCausal: 'no' } as never)).toThrow('WingsConfig: visualCausal must be true or false, got the string "no"');
    expect(() => injectWings(host, { stage: 1, rank: 2, initStd: NaN })).toThrow('WingsConfig: initStd must be a finite number, got NaN');
    expect(() => injectWings(host, { stage: 1, rank: 2, rnak: 3 } as never)).toThrow(/WingsConfig: unknown option "rnak" \(did you mean "rank"\?\)/);
    expect(() => injectWings(host, { stage: 1, rank: 2, referenceCompat: { doubleAdd: 1 } } as never)).toThrow('WingsConfig: referenceCompat.doubleAdd must be true or false, got 1');
    host.dispose();
  });
});
