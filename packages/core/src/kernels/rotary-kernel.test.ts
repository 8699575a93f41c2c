/**
 * The fused rotary kernel of the host-memory backends (`rotary-kernel.ts`): used by `applyRotary` on
 * cpu/wasm, bitwise equal to the unfused ops, float64-exact to float32 rounding, its gradients (in x,
 * cos and sin, and through the transposed kernel for a second derivative) numerically checked.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { applyRotary, rotateHalf, rotaryCosSin } from '../ops/rotary.js';
import { HOST_ROTARY, hostRotaryAvailable } from './rotary-kernel.js';
import { SeededRandom } from '../nn/seeded-random.js';
import { checkGradients, expectClose, expectNoLeaks, skipOnBackend } from '../testing/index.js';

const notHost = skipOnBackend(['webgpu', 'tensorflow'], 'the fused kernel is registered for cpu and wasm only');
const hostMemory = !notHost;

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rng = new SeededRandom(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: size }, () => 4 * rng.next() - 2), shape, 'float32');
}

/** The unfused ops: `x·cos + rotateHalf(x)·sin`. */
function unfused(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}

/** float64 `x·cos + rotateHalf(x)·sin` with the tables broadcast over heads (and batch when shared). */
function rotary64(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): Float64Array {
  const [B, h, L, d] = x.shape as number[];
  const xs = x.dataSync();
  const cs = cos.dataSync();
  const ss = sin.dataSync();
  const out = new Float64Array(xs.length);
  const half = d! / 2;
  for (let b = 0; b < B!; b++) {
    for (let head = 0; head < h!; head++) {
      for (let l = 0; l < L!; l++) {
        const row = ((b * h! + head) * L! + l) * d!;
        const table = ((cos.shape[0] === 1 ? 0 : b) * L! + l) * d!;
        for (let j = 0; j < d!; j++) {
          const rotated = j < half ? -xs[row + j + half]! : xs[row + j - half]!;
          out[row + j] = xs[row + j]! * cs[table + j]! + rotated * ss[table + j]!;
        }
      }
    }
  }
  return out;
}

function kernelNames(fn: () => tf.Tensor): Promise<string[]> {
  return tf.profile(() => fn()).then((info) => info.kernels.map((k) => k.name));
}

describe('fused rotary kernel (cpu, wasm)', () => {
  it.skipIf(notHost)('applyRotary runs the fused kernel on host-memory backends', async () => {
    expect(hostRotaryAvailable()).toBe(true);
    const x = randomTensor([1, 2, 3, 4], 1);
    const { cos, sin } = rotaryCosSin(tf.tensor2d([[0, 1, 5]], undefined, 'int32'), 4, 100);
    const names = await kernelNames(() => applyRotary(x, cos, sin));
    expect(names).toEqual([HOST_ROTARY]);
    tf.dispose([x, cos, sin]);
  });

  it.skipIf(hostMemory)('is not used on other backends (falls back to the ops)', () => {
    expect(hostRotaryAvailable()).toBe(false);
  });

  it('is bitwise the unfused ops and float64 to float32 rounding, per-batch and shared tables', () => {
    const x = randomTensor([2, 3, 5, 8], 2);
    for (const positions of [[[0, 1, 2, 7, 30], [4, 3, 9, 1, 0]], [[3, 0, 11, 2, 6]]]) {
      const { cos, sin } = rotaryCosSin(tf.tensor2d(positions, undefined, 'int32'), 8, 10000); // [B | 1, 1, 5, 8]
      const fused = applyRotary(x, cos, sin);
      const reference = unfused(x, cos, sin);
      expect(fused.shape).toEqual([2, 3, 5, 8]);
      const a = fused.dataSync();
      const b = reference.dataSync();
      let differing = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
      if (hostMemory) expect(differing).toBe(0);
      expectClose(fused, rotary64(x, cos, sin), { rtol: 1e-6, atol: 1e-6 });
      tf.dispose([cos, sin, fused, reference]);
    }
    x.dispose();
  });

  it('gradients in x, cos and sin match central differences', () => {
    const x = randomTensor([2, 2, 3, 4], 3);
    const cos = randomTensor([2, 1, 3, 4], 4);
    const sin = randomTensor([1, 1, 3, 4], 5); // shared by the batch rows
    const weights = randomTensor([2, 2, 3, 4], 6);
    checkGradients((a, c, s) => tf.sum(tf.mul(applyRotary(a!, c!, s!), weights)), [x, cos, sin]);
    tf.dispose([x, cos, sin, weights]);
  });

  it('the transposed kernel (the gradient in x) has correct gradients too', () => {
    const x = randomTensor([1, 2, 3, 4], 7);
    const cos = randomTensor([1, 1, 3, 4], 8);
    const sin = randomTensor([1, 1, 3, 4], 9);
    const dy = randomTensor([1, 2, 3, 4], 10);
    const weights = randomTensor([1, 2, 3, 4], 11);
    // g(dy, cos, sin) = Σ w ⊙ ∂/∂x Σ(dy ⊙ rotary(x)): linear in dy, runs the transposed kernel.
    const gradientInX = (g: tf.Tensor, c: tf.Tensor, s: tf.Tensor) =>
      tf.grad((input: tf.Tensor) => tf.sum(tf.mul(applyRotary(input, c, s), g)))(x);
    checkGradients((g, c, s) => tf.sum(tf.mul(gradientInX(g!, c!, s!), weights)), [dy, cos, sin]);
    // and its value is the transpose: dx = dy·cos + rotateHalfᵀ(dy·sin), rotateHalfᵀ(z) = −rotateHalf(z)
    const dx = gradientInX(dy, cos, sin);
    expectClose(dx, tf.tidy(() => tf.sub(tf.mul(dy, cos), rotateHalf(tf.mul(dy, sin)))), { rtol: 1e-6, atol: 1e-6 });
    tf.dispose([x, cos, sin, dy, weights, dx]);
  });

  it('shapes it does not fit fall back to the ops with the same values', () => {
    const x = randomTensor([2, 5, 8], 12); // rank 3: no heads axis
    const { cos, sin } = rotaryCosSin(tf.tensor2d([[0, 1, 2, 3, 4], [1, 1, 1, 1, 1]], undefined, 'int32'), 8, 10000);
    const cos3 = tf.reshape(cos, [2, 5, 8]);
    const sin3 = tf.reshape(sin, [2, 5, 8]);
    const y = applyRotary(x, cos3, sin3);
    expectClose(y, unfused(x, cos3, sin3), { rtol: 0, atol: 0 });
    tf.dispose([x, cos, sin, cos3, sin3, y]);
  });

  it('keeps the tensor count flat (forward and gradients)', () => {
    const x = randomTensor([1, 2, 3, 4], 13);
    const { cos, sin } = rotaryCosSin(tf.tensor2d([[0, 2, 4]], undefined, 'int32'), 4, 100);
    expectNoLeaks(() => tf.dispose(applyRotary(x, cos, sin)));
    expectNoLeaks(() => tf.dispose(tf.grads((a: tf.Tensor, c: tf.Tensor, s: tf.Tensor) => tf.sum(applyRotary(a, c, s)))([x, cos, sin])));
    tf.dispose([x, cos, sin]);
  });
});
