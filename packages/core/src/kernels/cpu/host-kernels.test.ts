/**
 * The cpu JavaScript kernels behind `maskedSoftmax` (`host-softmax.ts`) and `transposeAxes`
 * (`host-transpose.ts`): float64 references, numerical gradients, masks broadcast every way, exact
 * permutations, leak checks. Every test runs on every backend (elsewhere the same functions use tfjs'
 * own kernels and must give the same values); the "runs the kernel" tests only where it is registered.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { maskedSoftmax } from '../../ops/softmax.js';
import { transposeAxes, transposeLastTwo } from '../../ops/transpose.js';
import { splitHeads, mergeHeads } from '../../ops/attention.js';
import { HOST_SOFTMAX, HOST_SOFTMAX_GRAD, hostSoftmaxAvailable } from './host-softmax.js';
import { HOST_TRANSPOSE, hostTransposeAvailable } from './host-transpose.js';
import { checkGradients, expectClose, expectNoLeaks, skipOnBackend } from '../../testing/index.js';

const notCpu = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the fused kernels are registered for cpu only; elsewhere tfjs kernels run (tested below too)');

function rngOf(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 4 - 2;
}
const randomValues = (seed: number, n: number) => Float32Array.from({ length: n }, rngOf(seed));

/** float64 masked softmax over the last axis, `keep` broadcast (same rank), all-masked rows → 0. */
function maskedSoftmax64(x: Float32Array, shape: number[], keep: ArrayLike<number> | null, keepShape: number[]): Float64Array {
  const columns = shape[shape.length - 1]!;
  const out = new Float64Array(x.length);
  const rank = shape.length;
  for (let flat = 0; flat < x.length; flat += columns) {
    const index: number[] = [];
    for (let axis = rank - 1, rest = flat; axis >= 0; axis--) {
      index[axis] = rest % shape[axis]!;
      rest = Math.floor(rest / shape[axis]!);
    }
    const keepAt = (j: number) => {
      if (!keep) return true;
      let offset = 0;
      for (let axis = 0; axis < rank; axis++) {
        const i = axis === rank - 1 ? j : index[axis]!;
        offset = offset * keepShape[axis]! + (keepShape[axis] === 1 ? 0 : i);
      }
      return keep[offset] !== 0;
    };
    let max = -Infinity;
    for (let j = 0; j < columns; j++) if (keepAt(j)) max = Math.max(max, x[flat + j]!);
    if (max === -Infinity) continue;
    let sum = 0;
    for (let j = 0; j < columns; j++) if (keepAt(j)) sum += Math.exp(x[flat + j]! - max);
    for (let j = 0; j < columns; j++) out[flat + j] = keepAt(j) ? Math.exp(x[flat + j]! - max) / sum : 0;
  }
  return out;
}

describe('maskedSoftmax (fused on cpu)', () => {
  it.skipIf(notCpu)('runs one kernel forward and one backward on cpu', async () => {
    expect(hostSoftmaxAvailable()).toBe(true);
    const x = tf.tensor3d(randomValues(1, 2 * 3 * 5), [2, 3, 5]);
    const mask = tf.tensor3d([[[1, 1, 0, 1, 0]], [[0, 0, 0, 0, 0]]], [2, 1, 5], 'bool');
    const forward = await tf.profile(() => maskedSoftmax(x, mask));
    expect(forward.kernels.map((k) => k.name)).toEqual([HOST_SOFTMAX]);
    const backward = await tf.profile(() => tf.grad((v: tf.Tensor) => tf.sum(tf.square(maskedSoftmax(v, mask))))(x));
    expect(backward.kernels.map((k) => k.name)).toContain(HOST_SOFTMAX_GRAD);
    tf.dispose([x, mask]);
  });

  const cases: Array<{ name: string; shape: number[]; keepShape: number[] | null; keep?: (i: number) => number }> = [
    { name: 'no mask', shape: [2, 3, 7], keepShape: null },
    { name: 'key padding [B, 1, 1, L]', shape: [2, 3, 4, 6], keepShape: [2, 1, 1, 6], keep: (i) => (i % 6 < 4 ? 1 : 0) },
    { name: 'causal [1, 1, L, L] with a fully masked row', shape: [2, 2, 5, 5], keepShape: [1, 1, 5, 5], keep: (i) => (Math.floor(i / 5) === 0 ? 0 : i % 5 <= Math.floor(i / 5) ? 1 : 0) },
    { name: 'per-row column mask [B, h, L, 1]', shape: [1, 2, 3, 4], keepShape: [1, 2, 3, 1], keep: (i) => (i === 2 ? 0 : 1) },
  ];
  for (const c of cases) {
    it(`matches float64 (${c.name}), bool and 0/1 float masks alike, without leaks`, () => {
      const size = c.shape.reduce((a, b) => a * b, 1);
      const values = randomValues(size, size);
      const x = tf.tensor(values, c.shape);
      const keepValues = c.keepShape ? Int32Array.from({ length: c.keepShape.reduce((a, b) => a * b, 1) }, (_, i) => c.keep!(i)) : null;
      const expected = maskedSoftmax64(values, c.shape, keepValues, c.keepShape ?? []);
      const masks = keepValues ? [tf.tensor(keepValues, c.keepShape!, 'bool'), tf.tensor(Float32Array.from(keepValues), c.keepShape!)] : [null];
      for (const mask of masks) {
        const y = maskedSoftmax(x, mask);
        expect(y.shape).toEqual(c.shape);
        expectClose(y, expected, { rtol: 1e-6, atol: 1e-7, label: c.name });
        expectNoLeaks(() => maskedSoftmax(x, mask));
        expectNoLeaks(() => tf.grad((v: tf.Tensor) => tf.sum(tf.square(maskedSoftmax(v, mask))))(x));
        tf.dispose([y, ...(mask ? [mask] : [])]);
      }
      x.dispose();
    });
  }

  it('a lower-rank mask broadcasts from the right, as tfjs does', () => {
    const values = randomValues(9, 2 * 3 * 4);
    const x = tf.tensor3d(values, [2, 3, 4]);
    const mask = tf.tensor1d([1, 0, 1, 1], 'bool'); // [L] → [1, 1, L]
    expectClose(maskedSoftmax(x, mask), maskedSoftmax64(values, [2, 3, 4], [1, 0, 1, 1], [1, 1, 4]), { rtol: 1e-6, atol: 1e-7 });
    const [keepAll, keepNone] = [tf.scalar(1), tf.scalar(0)]; // rank-0 masks
    expectClose(maskedSoftmax(x, keepAll), maskedSoftmax64(values, [2, 3, 4], null, []), { rtol: 1e-6, atol: 1e-7 });
    expectClose(maskedSoftmax(x, keepNone), new Float64Array(24), { rtol: 0, atol: 0 });
    tf.dispose([x, mask, keepAll, keepNone]);
  });

  it('gradients match central differences (masked, with a fully masked row)', () => {
    const x = tf.tensor4d(randomValues(3, 1 * 2 * 3 * 4), [1, 2, 3, 4]);
    const mask = tf.tensor4d([[[[0, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1]]]], [1, 1, 3, 4], 'bool');
    const weights = tf.tensor4d(randomValues(4, 1 * 2 * 3 * 4), [1, 2, 3, 4]);
    checkGradients((v) => tf.sum(tf.mul(maskedSoftmax(v!, mask), weights)), [x]);
    checkGradients((v) => tf.sum(tf.mul(maskedSoftmax(v!), weights)), [x]);
    tf.dispose([x, mask, weights]);
  });

  it('second derivatives match central differences (through the gradient kernel on cpu)', () => {
    const x = tf.tensor2d(randomValues(5, 3 * 4), [3, 4]);
    const dy = tf.tensor2d(randomValues(6, 3 * 4), [3, 4]);
    const weights = tf.tensor2d(randomValues(7, 3 * 4), [3, 4]);
    // g(dy) = Σ w ⊙ ∂/∂x Σ(dy ⊙ softmax(x)): differentiates HOST_SOFTMAX_GRAD in its upstream input
    const gradientInX = (upstream: tf.Tensor) => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(maskedSoftmax(v), upstream)))(x);
    checkGradients((g) => tf.sum(tf.mul(gradientInX(g!), weights)), [dy]);
    tf.dispose([x, dy, weights]);
  });
});

describe('transposeAxes (fused on cpu)', () => {
  it.skipIf(notCpu)('runs the JavaScript kernel on cpu', async () => {
    expect(hostTransposeAvailable()).toBe(true);
    const x = tf.tensor3d(randomValues(8, 24), [2, 3, 4]);
    const info = await tf.profile(() => transposeAxes(x, [0, 2, 1]));
    expect(info.kernels.map((k) => k.name)).toEqual([HOST_TRANSPOSE]);
    x.dispose();
  });

  const perms: Array<[number[], number[]]> = [
    [[5, 7], [1, 0]],
    [[3, 4, 5], [0, 2, 1]],
    [[3, 4, 5], [2, 0, 1]],
    [[2, 5, 3, 4], [0, 2, 1, 3]], // split / merge heads: the last axis kept
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[1, 2, 3, 1, 4], [4, 3, 2, 1, 0]],
  ];
  for (const [shape, perm] of perms) {
    it(`[${shape}] by [${perm}] is the exact permutation, its gradient the inverse one, without leaks`, () => {
      const x = tf.tensor(randomValues(shape.length * 31, shape.reduce((a, b) => a * b, 1)), shape);
      const y = transposeAxes(x, perm);
      expect(y.shape).toEqual(perm.map((p) => shape[p]));
      expect(Array.from(y.dataSync())).toEqual(Array.from(tf.transpose(x, perm).dataSync()));
      const weights = tf.tensor(randomValues(7, x.size), y.shape);
      const [dx] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(transposeAxes(v, perm), weights)))([x]);
      const inverse = perm.map((_, i) => perm.indexOf(i));
      expect(Array.from(dx!.dataSync())).toEqual(Array.from(tf.transpose(weights, inverse).dataSync()));
      expectNoLeaks(() => transposeAxes(x, perm));
      tf.dispose([x, y, weights, dx!]);
    });
  }

  it('names a perm that is not a permutation of the axes', () => {
    const x = tf.zeros([2, 3, 4]);
    expect(() => transposeAxes(x, [0, 0, 1])).toThrow(/transposeAxes: perm must be a permutation of 0\.\.2 for x \[2,3,4\], got \[0,0,1\]/);
    expect(() => transposeAxes(x, [1, 0])).toThrow(/got \[1,0\]/);
    x.dispose();
  });

  it('transposeLastTwo, splitHeads and mergeHeads keep their values through it', () => {
    const x = tf.tensor3d(randomValues(11, 2 * 6 * 8), [2, 6, 8]);
    const heads = splitHeads(x, 4); // [2, 4, 6, 2]
    expect(Array.from(heads.dataSync())).toEqual(Array.from(tf.transpose(tf.reshape(x, [2, 6, 4, 2]), [0, 2, 1, 3]).dataSync()));
    const merged = mergeHeads(heads);
    expect(Array.from(merged.dataSync())).toEqual(Array.from(x.dataSync()));
    const t = transposeLastTwo(x);
    expect(Array.from(t.dataSync())).toEqual(Array.from(tf.transpose(x, [0, 2, 1]).dataSync()));
    tf.dispose([x, heads, merged, t]);
  });
});
