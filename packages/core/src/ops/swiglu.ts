/**
 * SwiGLU math, forward and backward written out explicitly: the one copy used by core's `SwiGLU`
 * module (`swiGLUGate`) and by Parrot's experts (all three mixing strategies and its worker threads).
 *
 * Kernels are in the internal `[in, out]` layout. For flattened tokens `x [M, D]`:
 *
 *   g = x·Gate  [M, I]     u = x·Up  [M, I]     h = silu(g) ⊙ u  [M, I]     y = h·Down  [M, D]
 *
 * Backward, given `dy [M, D]`:
 *
 *   dDown = hᵀ·dy                    dh = dy·Downᵀ
 *   du = dh ⊙ silu(g)                dg = dh ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g)))
 *   dGate = xᵀ·dg   dUp = xᵀ·du      dx = dg·Gateᵀ + du·Upᵀ
 *
 * Every product is a plain 2-D `matMul2d` with explicitly (tiled-)transposed operands, which is the
 * fast path on wasm (`·ᵀ` products through `matMul2dTransposeB`); callers running several experts on
 * the same tokens form `xᵀ` once and pass it to each `swiGLUBackward`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { silu } from './activations.js';
import { matMul2d, matMul2dTransposeB } from './matmul.js';
import { transposeLastTwo } from './transpose.js';

/** One SwiGLU's kernels in the internal `[in, out]` layout. */
export interface SwiGLUKernels {
  gate: tf.Tensor2D; // [D, I]
  up: tf.Tensor2D; // [D, I]
  down: tf.Tensor2D; // [I, D]
}

/** What `swiGLUBackward` needs from the forward. */
export interface SwiGLUActivations {
  gate: tf.Tensor2D; // g = x·Gate  [M, I]
  up: tf.Tensor2D; // u = x·Up    [M, I]
  output: tf.Tensor2D; // y = h·Down  [M, D]
}

/** Kernel gradients (absent when not asked for) and the input gradient. */
export interface SwiGLUGradients {
  gate?: tf.Tensor2D; // [D, I]
  up?: tf.Tensor2D; // [D, I]
  down?: tf.Tensor2D; // [I, D]
  input: tf.Tensor2D; // [M, D]
}

/** The gated hidden `h = silu(g) ⊙ u` (any equal shapes). */
export function swiGLUGate(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(silu(gate), up));
}

/** `x [M, D]` → the activations (output `y [M, D]` included). */
export function swiGLUForward(x: tf.Tensor2D, k: SwiGLUKernels): SwiGLUActivations {
  return tf.tidy(() => {
    const gate = matMul2d(x, k.gate); // [M, I]
    const up = matMul2d(x, k.up); // [M, I]
    const output = matMul2d(swiGLUGate(gate, up) as tf.Tensor2D, k.down); // [M, D]
    return { gate, up, output } as unknown as tf.TensorContainer;
  }) as unknown as SwiGLUActivations;
}

/**
 * The backward. `xT [D, M]` is `xᵀ` (shareable between SwiGLUs on the same tokens), `dy [M, D]` the
 * output gradient. `weightGradients` false: only the input gradient (no `xᵀ·d·` / `hᵀ·dy` products;
 * `xT` may then be null).
 */
export function swiGLUBackward(
  xT: tf.Tensor2D | null,
  k: SwiGLUKernels,
  act: SwiGLUActivations,
  dy: tf.Tensor2D,
  weightGradients = true,
): SwiGLUGradients {
  return tf.tidy(() => {
    const g = act.gate;
    const sig = tf.sigmoid(g); // σ(g)  [M, I]
    const s = tf.mul(g, sig); // silu(g)  [M, I]
    const dh = matMul2dTransposeB(dy, k.down); // dy·Downᵀ  [M, D]·[D, I]
    const du = tf.mul(dh, s) as tf.Tensor2D; // [M, I]
    const siluGrad = tf.mul(sig, tf.add(1, tf.mul(g, tf.sub(1, sig)))); // σ(g)·(1 + g·(1 − σ(g)))
    const dg = tf.mul(tf.mul(dh, act.up), siluGrad) as tf.Tensor2D; // [M, I]
    const input = tf.add(matMul2dTransposeB(dg, k.gate), matMul2dTransposeB(du, k.up)) as tf.Tensor2D; // dg·Gateᵀ + du·Upᵀ  [M, D]
    if (!weightGradients) return { input } as unknown as tf.TensorContainer;
    if (!xT) throw new Error('swiGLUBackward: xT is required for the weight gradients');
    const h = tf.mul(s, act.up) as tf.Tensor2D; // [M, I]
    const down = matMul2d(transposeLastTwo(h), dy); // [I, M]·[M, D]
    const gate = matMul2d(xT, dg); // [D, M]·[M, I]
    const up = matMul2d(xT, du); // [D, M]·[M, I]
    return { gate, up, down, input } as unknown as tf.TensorContainer;
  }) as unknown as SwiGLUGradients;
}

/**
 * `down(silu(x·Gate) ⊙ (x·Up))` for `x [M, D]` with the backward above as its gradient (one
 * `tf.customGrad`: tfjs' autodiff would record every elementwise op of silu and keep their outputs).
 */
export function swiGLU(x: tf.Tensor2D, k: SwiGLUKernels): tf.Tensor2D {
  const f = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xIn, gate, up, down] = args.slice(0, -1) as tf.Tensor2D[];
    const act = swiGLUForward(xIn!, { gate: gate!, up: up!, down: down! });
    save([xIn!, gate!, up!, down!, act.gate, act.up]);
    return {
      value: act.output,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, su, sd, ag, au] = saved as tf.Tensor2D[];
        const grads = swiGLUBackward(transposeLastTwo(sx!), { gate: sg!, up: su!, down: sd! }, { gate: ag!, up: au!, output: dy as tf.Tensor2D }, dy as tf.Tensor2D);
        return [grads.input, grads.gate!, grads.up!, grads.down!];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (f as unknown as (...t: tf.Tensor[]) => tf.Tensor2D)(x, k.gate, k.up, k.down);
}
