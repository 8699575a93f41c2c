/**
 * SwiGLU math: forward against float64 loops, the written-out backward (`swiGLU`'s custom gradient)
 * against central differences and against tfjs autodiff of the plain composition, no leaks.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { matMul2d, silu, swiGLU, swiGLUBackward, swiGLUForward, swiGLUGate } from '../index.js';
import { checkGradients, expectClose, expectNoLeaks } from '../testing/index.js';

const [M, D, I] = [5, 4, 6];
const seq = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 3.7 + i * 0.9) * 0.8);
const x64 = seq(M * D, 1);
const gate64 = seq(D * I, 2);
const up64 = seq(D * I, 3);
const down64 = seq(I * D, 4);

/** float64 `down(silu(x·Gate) ⊙ (x·Up))`, kernels `[in, out]`. */
function swiglu64(): number[] {
  const out: number[] = [];
  for (let m = 0; m < M; m++) {
    const h = Array.from({ length: I }, (_, i) => {
      let g = 0;
      let u = 0;
      for (let d = 0; d < D; d++) {
        g += x64[m * D + d]! * gate64[d * I + i]!;
        u += x64[m * D + d]! * up64[d * I + i]!;
      }
      return (g / (1 + Math.exp(-g))) * u;
    });
    for (let d = 0; d < D; d++) out.push(h.reduce((s, v, i) => s + v * down64[i * D + d]!, 0));
  }
  return out;
}

describe('swiGLU', () => {
  it('forward matches float64; swiGLUGate is silu(g) ⊙ u', () => {
    const x = tf.tensor2d(x64, [M, D]);
    const k = { gate: tf.tensor2d(gate64, [D, I]), up: tf.tensor2d(up64, [D, I]), down: tf.tensor2d(down64, [I, D]) };
    const y = swiGLU(x, k);
    expectClose(y, swiglu64(), { label: 'swiGLU' });
    const act = swiGLUForward(x, k);
    expect(Array.from(act.output.dataSync())).toEqual(Array.from(y.dataSync()));
    const gated = swiGLUGate(act.gate, act.up);
    const plain = tf.mul(silu(act.gate), act.up);
    expect(Array.from(gated.dataSync())).toEqual(Array.from(plain.dataSync()));
    expectNoLeaks(() => swiGLU(x, k));
    tf.dispose([x, k.gate, k.up, k.down, y, act.gate, act.up, act.output, gated, plain]);
  });

  it('the custom gradient matches central differences and autodiff of the plain composition', () => {
    const x = tf.tensor2d(x64, [M, D]);
    const [g, u, d] = [tf.tensor2d(gate64, [D, I]), tf.tensor2d(up64, [D, I]), tf.tensor2d(down64, [I, D])];
    const w = tf.tensor2d(seq(M * D, 5), [M, D]); // a non-uniform upstream gradient
    const loss = (y: tf.Tensor) => tf.sum(tf.mul(y, w));
    checkGradients((a, b, c, e) => loss(swiGLU(a as tf.Tensor2D, { gate: b as tf.Tensor2D, up: c as tf.Tensor2D, down: e as tf.Tensor2D })), [x, g, u, d], { label: 'swiGLU' });
    const custom = tf.grads((a, b, c, e) => loss(swiGLU(a as tf.Tensor2D, { gate: b as tf.Tensor2D, up: c as tf.Tensor2D, down: e as tf.Tensor2D })))([x, g, u, d]);
    const autodiff = tf.grads((a, b, c, e) => loss(matMul2d(tf.mul(silu(matMul2d(a as tf.Tensor2D, b as tf.Tensor2D)), matMul2d(a as tf.Tensor2D, c as tf.Tensor2D)) as tf.Tensor2D, e as tf.Tensor2D)))([x, g, u, d]);
    custom.forEach((grad, i) => expectClose(grad, autodiff[i]!, { label: `gradient ${i}` }));
    expectNoLeaks(() => tf.grads((a: tf.Tensor) => tf.sum(swiGLU(a as tf.Tensor2D, { gate: g, up: u, down: d })))([x]));
    const act = swiGLUForward(x, { gate: g, up: u, down: d });
    expect(() => swiGLUBackward(null, { gate: g, up: u, down: d }, act, w)).toThrow(/xT is required/);
    const inputOnly = swiGLUBackward(null, { gate: g, up: u, down: d }, act, w, false);
    expectClose(inputOnly.input, custom[0]!, { label: 'input-only backward' });
    tf.dispose([x, g, u, d, w, ...custom, ...autodiff, act.gate, act.up, act.output, inputOnly.input]);
  });
});
