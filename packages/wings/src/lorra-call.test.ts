import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict } from '@mllm/core';
import { LoRRA } from './lorra.js';
import { RELATIVE_TOLERANCE, learnerStateDict, lorra64, maxRelativeError, randomArray, randomLearnerWeights } from './reference-math.testutil.js';

const H = 8;
const HEADS = 2;
const THETA = 10000;

describe('LoRRA.call (layers API)', () => {
  it('passes keyMask, attendMask, causalByPosition and fullyMaskedRows through (float64)', () => {
    const w = randomLearnerWeights(71, H, 3);
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: 3, ropeTheta: THETA });
    const dict = learnerStateDict(w);
    learner.loadStateDict(dict);
    disposeStateDict(dict);
    const q = randomArray(5, 3 * H);
    const f = randomArray(6, 4 * H);
    const c = {
      query: [[0, 1, 2].map((t) => q.slice(t * H, (t + 1) * H))],
      source: [[0, 1, 2, 3].map((j) => f.slice(j * H, (j + 1) * H))],
      queryPositions: [[0, 1, 2]],
      keyPositions: [[0, 1, 2, 3]],
      keyMask: [[1, 1, 1, 0]],
      causalByPosition: true,
      // Row 1 fully masked: 'uniform' averages every key there, 'zero' gives 0.
      attendMask: [[[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]]],
      fullyMaskedRows: 'uniform' as const,
    };
    const inputs = () => [
      tf.tensor3d(c.query), tf.tensor3d(c.source), tf.tensor2d(c.queryPositions, undefined, 'int32'),
      tf.tensor2d(c.keyPositions, undefined, 'int32'), tf.tensor2d(c.keyMask), tf.tensor3d(c.attendMask),
    ];
    const before = tf.memory().numTensors;
    const got = tf.tidy(() => learner.call(inputs(), { causalByPosition: true, fullyMaskedRows: 'uniform' }).arraySync());
    expect(tf.memory().numTensors).toBe(before);
    expect(maxRelativeError(got, lorra64(w, HEADS, THETA, c))).toBeLessThan(RELATIVE_TOLERANCE);
    expect(Math.max(...(got as number[][][])[0][1].map(Math.abs))).toBeGreaterThan(1e-3);
    // The same through forward() — and without the attendMask the result differs (it was dropped before).
    const viaForward = tf.tidy(() => {
      const [query, source, queryPositions, keyPositions, keyMask, attendMask] = inputs();
      return learner.forward({ query, source, queryPositions, keyPositions, keyMask, attendMask, causalByPosition: true, fullyMaskedRows: 'uniform' }).arraySync();
    });
    expect(got).toEqual(viaForward);
    const withoutAttend = tf.tidy(() => learner.call(inputs().slice(0, 5), { causalByPosition: true }).arraySync());
    expect(maxRelativeError(withoutAttend, got)).toBeGreaterThan(1e-3);
    learner.dispose();
  });

  it('refuses unknown kwargs and wrong input counts with clear errors', () => {
    const learner = new LoRRA({ hiddenSize: H, numHeads: HEADS, rank: 2, ropeTheta: THETA });
    tf.tidy(() => {
      const x = [tf.zeros([1, 2, H]), tf.zeros([1, 2, H]), tf.zeros([1, 2]), tf.zeros([1, 2])];
      expect(() => learner.call(x, { attendMask: tf.ones([1, 2, 2]) })).toThrowError(/unknown kwargs attendMask \(expected causalByPosition, fullyMaskedRows\)/);
      expect(() => learner.call(x.slice(0, 3))).toThrowError(/expects \[query, source, queryPositions, keyPositions, keyMask\?, attendMask\?\], got 3 tensors/);
      expect(() => learner.call([...x, tf.ones([1, 2]), tf.ones([1, 2, 2]), tf.ones([1])])).toThrowError(/got 7 tensors/);
      expect(() => learner.call(x, { fullyMaskedRows: 'nan' })).toThrowError(/fullyMaskedRows must be 'zero' or 'uniform', got nan/);
    });
    learner.dispose();
  });
});
