/**
 * layerNorm: float64 reference, gradients by central differences (and second derivatives through the
 * cpu kernels), parameter gradients only when asked, no leaks. Runs everywhere; on cpu through the fused
 * kernels of `host-layer-norm.ts`.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { layerNorm } from '../../nn/layer-norm.js';
import { HOST_LAYER_NORM, HOST_LAYER_NORM_GRAD_INPUT, HOST_LAYER_NORM_GRAD_PARAMS, hostLayerNormAvailable } from './host-layer-norm.js';
import { checkGradients, expectClose, expectNoLeaks, skipOnBackend } from '../../testing/index.js';

const notCpu = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the fused kernels are registered for cpu only; elsewhere composed tf ops run (tested below too)');
const random = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed);

function layerNorm64(x: Float32Array, D: number, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += D) {
    let mean = 0;
    for (let j = 0; j < D; j++) mean += x[base + j]!;
    mean /= D;
    let variance = 0;
    for (let j = 0; j < D; j++) variance += (x[base + j]! - mean) ** 2;
    variance /= D;
    for (let j = 0; j < D; j++) out[base + j] = ((x[base + j]! - mean) / Math.sqrt(variance + eps)) * w[j]! + b[j]!;
  }
  return out;
}

describe('layerNorm (fused on cpu)', () => {
  it.skipIf(notCpu)('runs one kernel forward; frozen parameters cost no parameter-gradient kernel', async () => {
    expect(hostLayerNormAvailable()).toBe(true);
    const [x, w, b] = [random([2, 3, 8], 1), random([8], 2), random([8], 3)];
    expect((await tf.profile(() => layerNorm(x, w, b, 1e-5))).kernels.map((k) => k.name)).toEqual([HOST_LAYER_NORM]);
    const onlyInput = await tf.profile(() => tf.grad((v: tf.Tensor) => tf.sum(layerNorm(v, w, b, 1e-5)))(x));
    const names = onlyInput.kernels.map((k) => k.name);
    expect(names).toContain(HOST_LAYER_NORM_GRAD_INPUT);
    expect(names).not.toContain(HOST_LAYER_NORM_GRAD_PARAMS);
    tf.dispose([x, w, b]);
  });

  for (const [shape, eps] of [[[4, 16], 1e-5], [[2, 3, 7], 1e-12], [[1, 33, 64], 1e-6]] as Array<[number[], number]>) {
    it(`[${shape}] eps ${eps} matches float64`, () => {
      const D = shape[shape.length - 1]!;
      const [x, w, b] = [random(shape, shape.length), random([D], 5), random([D], 6)];
      const expected = layerNorm64(x.dataSync() as Float32Array, D, w.dataSync() as Float32Array, b.dataSync() as Float32Array, eps);
      const y = layerNorm(x, w, b, eps);
      expectClose(y, expected, { rtol: 1e-5, atol: 1e-5 });
      expectNoLeaks(() => layerNorm(x, w, b, eps));
      expectNoLeaks(() => tf.grads((v: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(layerNorm(v, ww, bb, eps)))([x, w, b]));
      tf.dispose([x, w, b, y]);
    });
  }

  it('gradients in x, weight and bias match central differences', () => {
    const [x, w, b, weights] = [random([3, 6], 7), random([6], 8), random([6], 9), random([3, 6], 10)];
    checkGradients((v, ww, bb) => tf.sum(tf.mul(layerNorm(v!, ww!, bb!, 1e-5), weights)), [x, w, b]);
    tf.dispose([x, w, b, weights]);
  });

  it('second derivatives match central differences (through both backward kernels on cpu)', () => {
    const [x, w, b, weights, outer] = [random([2, 5], 11), random([5], 12), random([5], 13), random([2, 5], 14), random([2, 5], 15)];
    // h(x, w) = Σ outer ⊙ ∂/∂x Σ(weights ⊙ LN(x)) + Σ ∂/∂w …: runs both gradient kernels inside a gradient
    const inner = (v: tf.Tensor, ww: tf.Tensor, upstream: tf.Tensor) => {
      const [dx, dw, db] = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(layerNorm(p, q, r, 1e-5), upstream)))([v, ww, b]);
      return tf.add(tf.add(tf.sum(tf.mul(dx!, outer)), tf.sum(tf.mul(dw!, ww))), tf.sum(tf.mul(db!, tf.square(ww))));
    };
    checkGradients((v, ww, upstream) => inner(v!, ww!, upstream!), [x, w, weights]); // every input of both backward kernels
    tf.dispose([x, w, b, weights, outer]);
  });
});
