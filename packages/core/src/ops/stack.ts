/**
 * Stacking along a new first axis with fast kernels and gradients on the host-memory backends.
 *
 * - {@link repeatStack}: `x → [copies, ...x.shape]`. Not `tf.broadcastTo`/`tf.tile`: their kernels
 *   walk every output element with index arithmetic (wasm: 293 ms to repeat a `[577, 1024]` activation
 *   6 times, cpu: 63 ms). Concatenating the copies is a block copy (wasm 1.8 ms, cpu 2.2 ms). Gradient
 *   `Σ_copies dy`: a Sum over axis 0 on wasm (3.8 ms), an AddN of the copies on cpu (7.9 ms; tfjs-cpu's
 *   Sum moves the reduced axis innermost first: 93 ms).
 * - {@link unstackFirstAxis}: `[G, ...S] → G × [...S]`. On wasm tfjs' Unpack copies the whole input out of
 *   the heap for every piece (6 pieces of a `[6, 1024, 1024]` stack: ~33 ms); here each piece is one copy
 *   of its own contiguous block. {@link stackFirstAxis} is `tf.stack` whose gradient uses it.
 *
 * - {@link sumOverAxis1}: `[B, G, ...S] → [B, ...S]` (e.g. attention probabilities summed over heads). tfjs-wasm's
 *   Sum reduces only the innermost axis, so `tf.sum(x, 1)` first transposes the whole input (2.4 ms for a
 *   `[1, 16, 256, 256]` attention map); on wasm this adds the G contiguous blocks with one AddN instead, and
 *   its gradient repeats `dy` by concatenation (not Tile).
 *
 * Same values as the tfjs ops (copies; the repeat's gradient adds the same terms, on wasm possibly in another
 * order, i.e. equal to float32 rounding).
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostDataAccessible, registerKernelsOnce, withFloat32Output } from '../kernels/host-tensor-data.js';

/** Kernel name (wasm): the G contiguous blocks of `[G, ...S]` as G tensors. */
export const WASM_UNSTACK = 'MllmUnstackFirstAxis';

/** `x [...S]` → `[copies, ...S]` (differentiable; see the file comment for why not broadcastTo). */
export function repeatStack(x: tf.Tensor, copies: number): tf.Tensor {
  if (!Number.isInteger(copies) || copies < 1) throw new Error(`repeatStack: copies must be a positive integer, got ${String(copies)}`);
  const repeat = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    const one = tf.expandDims(input, 0); // [1, ...S]
    return {
      value: copies === 1 ? tf.clone(one) : tf.concat(new Array<tf.Tensor>(copies).fill(one), 0), // [copies, ...S]
      gradFunc: (dy: tf.Tensor) =>
        tf.getBackend() === 'cpu' && copies > 1 ? tf.addN(tf.unstack(dy, 0)) : tf.sum(dy, 0), // Σ_copies dy  [...S]
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (repeat as unknown as (t: tf.Tensor) => tf.Tensor)(x);
}

function unstackKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo[] {
  const x = args.inputs.x!;
  const [G, ...rest] = x.shape;
  const block = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: G! }, (_, g) =>
    withFloat32Output(args.backend, rest, (out, read) => out.set(read(x).subarray(g * block, (g + 1) * block))),
  );
}

// tfjs passes zeros for pieces that received no gradient.
const UNSTACK_GRADIENT: tf.GradConfig = { kernelName: WASM_UNSTACK, gradFunc: (dys) => ({ x: () => tf.stack(dys as tf.Tensor[], 0) }) };

/** Registers the wasm kernel; whether the active backend runs it. */
function wasmUnstackAvailable(): boolean {
  if (tf.getBackend() !== 'wasm' || !hostDataAccessible('wasm')) return false;
  registerKernelsOnce([{ kernelName: WASM_UNSTACK, backendName: 'wasm', kernelFunc: unstackKernel as unknown as tf.KernelFunc }], [UNSTACK_GRADIENT]);
  return true;
}

/** `x [G, ...S]` → G tensors `[...S]` (on wasm one block copy each; elsewhere `tf.unstack`). Differentiable. */
export function unstackFirstAxis(x: tf.Tensor): tf.Tensor[] {
  if (x.rank >= 1 && x.dtype === 'float32' && wasmUnstackAvailable()) {
    return tf.engine().runKernel(WASM_UNSTACK, { x } as unknown as tf.NamedTensorMap, {}) as unknown as tf.Tensor[];
  }
  return tf.unstack(x, 0);
}

/** `tf.stack(tensors, 0)` whose gradient splits `dy` with {@link unstackFirstAxis}. */
export function stackFirstAxis(tensors: readonly tf.Tensor[]): tf.Tensor {
  if (tensors.length === 0) throw new Error('stackFirstAxis: needs at least one tensor, got none');
  const stack = tf.customGrad(((...args: unknown[]) => {
    const inputs = args.slice(0, -1) as tf.Tensor[];
    (args[args.length - 1] as tf.GradSaveFunc)([]);
    return { value: tf.stack(inputs, 0), gradFunc: (dy: tf.Tensor) => unstackFirstAxis(dy) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (stack as unknown as (...t: tf.Tensor[]) => tf.Tensor)(...tensors);
}

/** `x [B, G, ...S]` → `Σ_g x[:, g]` `[B, ...S]` (differentiable). On wasm per-sample block sums (see the file comment). */
export function sumOverAxis1(x: tf.Tensor): tf.Tensor {
  if (x.rank < 2) throw new Error(`sumOverAxis1: x must have at least 2 axes [B, G, ...], got [${x.shape}]`);
  if (x.dtype !== 'float32' || !wasmUnstackAvailable()) return tf.sum(x, 1);
  const [B, G] = x.shape as number[];
  const sum = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    const perSample = unstackFirstAxis(input).map((sample) => tf.addN(unstackFirstAxis(sample))); // B × [...S]
    return {
      value: B === 1 ? tf.expandDims(perSample[0]!, 0) : tf.stack(perSample, 0), // [B, ...S]
      gradFunc: (dy: tf.Tensor) => tf.concat(new Array<tf.Tensor>(G!).fill(tf.expandDims(dy, 1)), 1), // [B, G, ...S]
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (sum as unknown as (t: tf.Tensor) => tf.Tensor)(x) as tf.Tensor;
}
