/**
 * Poisoned inputs against ParrotMoE (every backend): NaN/Inf at padded text positions never reach
 * any output (same bits as zeros there), NaN at real positions does (nothing is hidden), masks must
 * be 0/1, an empty batch gives empty outputs, and wrong kinds of argument are errors naming it.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { setSeed } from '@mllm/core';
import { expectNoLeaks } from '@mllm/core/testing';
import { ParrotMoE, parrotHooks, type ParrotMoEOutputs } from './index.js';

const B = 2, N = 3, T = 4, D = 8, E = 3;

function make(overrides: Record<string, unknown> = {}): ParrotMoE {
  setSeed(5);
  return new ParrotMoE({ hiddenSize: D, intermediateSize: 16, numExperts: E, auxLossCoefficient: 0.01, ...overrides });
}

const visualValues = Array.from({ length: B * N * D }, (_, i) => Math.sin(i * 0.37));
const textValues = Array.from({ length: B * T * D }, (_, i) => Math.cos(i * 0.21));
const maskValues = [1, 1, 0, 0, 1, 1, 1, 0]; // [B, T]: sample 0 has 2 real tokens, sample 1 has 3

/** text with `value` written into every feature of the positions where `where(b, t)` holds. */
function textWith(value: number, where: (b: number, t: number) => boolean): tf.Tensor3D {
  const data = textValues.slice();
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (where(b, t)) for (let d = 0; d < D; d++) data[(b * T + t) * D + d] = value;
  return tf.tensor3d(data, [B, T, D]);
}

async function outputs(moe: ParrotMoE, text: tf.Tensor3D, mask: tf.Tensor2D): Promise<Record<string, number[]>> {
  const visual = tf.tensor3d(visualValues, [B, N, D]);
  const out: ParrotMoEOutputs = moe.forward({ visual, text, textMask: mask });
  const result = {
    output: Array.from(await out.output.data()),
    routingWeights: Array.from(await out.routingWeights.data()),
    textAttention: Array.from(await out.textAttention.data()),
    auxLoss: Array.from(await out.auxLoss!.data()),
  };
  tf.dispose([visual, out.output, out.routingWeights, out.textAttention, out.auxLoss!]);
  return result;
}

const padded = (b: number, t: number) => maskValues[b * T + t] === 0;

describe('ParrotMoE with poisoned inputs', () => {
  it('NaN, +Inf and -Inf at padded text positions change no output bit; at a real position NaN propagates', async () => {
    const moe = make();
    const mask = tf.tensor2d(maskValues, [B, T]);
    const clean = textWith(0, padded);
    const expected = await outputs(moe, clean, mask);
    for (const values of Object.values(expected)) expect(values.every(Number.isFinite)).toBe(true);
    for (const poison of [NaN, Infinity, -Infinity, 3e38]) {
      const text = textWith(poison, padded);
      expect(await outputs(moe, text, mask), `poison ${poison}`).toEqual(expected);
      text.dispose();
    }
    // Bool masks behave as 0/1 masks.
    const boolMask = tf.tensor2d(maskValues.map(Boolean), [B, T], 'bool');
    const poisoned = textWith(NaN, padded);
    expect(await outputs(moe, poisoned, boolMask)).toEqual(expected);
    // A NaN at a real token is a real NaN: sample 0's routing weights become NaN, sample 1 stays finite.
    const real = textWith(NaN, (b, t) => b === 0 && t === 1);
    const hit = await outputs(moe, real, mask);
    expect(hit.routingWeights.slice(0, E).every(Number.isNaN)).toBe(true);
    expect(hit.routingWeights.slice(E)).toEqual(expected.routingWeights.slice(E));
    tf.dispose([mask, clean, boolMask, poisoned, real]);
    moe.dispose();
  });

  it('masks must hold only 0 and 1 (NaN, 0.5, 2 are errors naming textMask and the position)', () => {
    const moe = make();
    const visual = tf.tensor3d(visualValues, [B, N, D]);
    const text = textWith(0, padded);
    for (const [bad, shown] of [[NaN, 'NaN'], [0.5, '0.5'], [2, '2'], [-1, '-1']] as const) {
      const values = maskValues.slice();
      values[6] = bad;
      const mask = tf.tensor2d(values, [B, T]);
      expect(() => moe.forward({ visual, text, textMask: mask })).toThrow(`ParrotMoE.forward: textMask must hold only 0 and 1 (or be bool), got ${shown} at [1, 2]`);
      mask.dispose();
    }
    tf.dispose([visual, text]);
    moe.dispose();
  });

  it('an empty batch returns empty outputs (auxLoss 0) and leaks nothing', async () => {
    for (const useMoe of [true, false]) {
      const moe = make({ useMoe });
      const visual = tf.zeros([0, N, D]) as tf.Tensor3D;
      const text = tf.zeros([0, T, D]) as tf.Tensor3D;
      const mask = tf.zeros([0, T]) as tf.Tensor2D;
      expectNoLeaks(() => {
        const out = moe.forward({ visual, text, textMask: mask });
        expect(out.output.shape).toEqual([0, N, D]);
        expect(out.routingWeights.shape).toEqual([0, E]);
        expect(out.textAttention.shape).toEqual([0, T]);
        if (useMoe) expect(out.auxLoss!.dataSync()[0]).toBe(0);
        else expect(out.auxLoss).toBeUndefined();
        tf.dispose([out.output, out.routingWeights, out.textAttention, out.auxLoss ?? []]);
      });
      tf.dispose([visual, text, mask]);
      moe.dispose();
    }
  });

  it('wrong kinds of argument: errors naming the argument, the expected and the actual value', () => {
    const constructorCases: Array<[unknown, string | RegExp]> = [
      [undefined, 'ParrotMoE: args must be an object, got undefined'],
      [[8, 16, 3], 'ParrotMoE: args must be an object, got a plain array (length 3)'],
      [{ hiddenSize: '64', intermediateSize: 16, numExperts: 3 }, 'ParrotMoE: hiddenSize must be a positive integer, got the string "64"'],
      [{ hiddenSize: 8, intermediateSize: 16, numExpert: 3 }, /ParrotMoE: unknown option "numExpert" \(did you mean "numExperts"\?\); known: hiddenSize, /],
      [{ hiddenSize: 8, intermediateSize: 16, numExperts: 3, useMoe: 'no' }, 'ParrotMoE: useMoe must be true or false, got the string "no"'],
      [{ hiddenSize: 8, intermediateSize: 16, numExperts: 3, useResidual: 1 }, 'ParrotMoE: useResidual must be true or false, got 1'],
      [{ hiddenSize: 8, intermediateSize: 16, numExperts: 3, moeWeight: NaN }, 'ParrotMoE: moeWeight must be a finite number, got NaN'],
    ];
    expect(() => parrotHooks(undefined as never)).toThrow('parrotHooks: moe must be a ParrotMoE, got undefined');
    for (const [args, message] of constructorCases) expect(() => new ParrotMoE(args as never), JSON.stringify(args)).toThrow(message);

    const moe = make();
    const visual = tf.tensor3d(visualValues, [B, N, D]);
    const text = textWith(0, padded);
    const forwardCases: Array<[unknown, string]> = [
      [undefined, 'ParrotMoE.forward: inputs must be an object, got undefined'],
      [visual, 'ParrotMoE.forward: inputs must be an object, got a float32 tensor [2, 3, 8]'],
      [{ text }, 'ParrotMoE.forward: visual must be a tf.Tensor, got undefined'],
      [{ visual: [[[1]]], text }, 'ParrotMoE.forward: visual must be a tf.Tensor, got a plain array (length 1)'],
      [{ visual, text: 'hello' }, 'ParrotMoE.forward: text must be a tf.Tensor, got the string "hello"'],
      [{ visual, text, textMask: [[1, 0]] }, 'ParrotMoE.forward: textMask must be a tf.Tensor, got a plain array (length 1)'],
    ];
    for (const [inputs, message] of forwardCases) expect(() => moe.forward(inputs as never)).toThrow(message);
    const disposed = tf.zeros([B, N, D]);
    disposed.dispose();
    expect(() => moe.forward({ visual: disposed as tf.Tensor3D, text })).toThrow('ParrotMoE.forward: visual must be a tf.Tensor, got a disposed float32 tensor [2, 3, 8]');
    tf.dispose([visual, text]);
    moe.dispose();
  });
});
