/**
 * Softmax over the last axis, optionally masked, as one JavaScript pass on the `cpu` backend, with a
 * one-pass gradient.
 *
 * Why: tfjs-cpu composes softmax from Max, Sub, Exp, Sum and Div (each a generic kernel with per-element
 * index arithmetic), and a masked softmax adds a broadcasting Add and Mul: ~230 ns per element here
 * (232 ms for one `[1, 16, 256, 256]` attention softmax in a Wings forward), its gradient as much again.
 * One pass per row costs a few percent of that. On wasm tfjs' own Softmax (SIMD) is faster than a
 * JavaScript `Math.exp` loop, so this kernel is registered for cpu only.
 *
 * Semantics (those of `maskedSoftmax`): positions where `keep` is 0 get probability exactly 0; a row
 * with no kept position is all zeros. Gradient: `dx = P ⊙ (dy − Σ_row dy ⊙ P)` (zero where masked).
 * `keep` (bool or numeric, broadcasting against the logits from the right) gets no gradient: a mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostDataAccessible, registerKernelsOnce, withFloat32Output } from '../host-tensor-data.js';
import { broadcastStrides, rowOffsets } from '../strided-rows.js';

/** Forward kernel name (cpu). */
export const HOST_SOFTMAX = 'MllmHostSoftmax';
/** Gradient kernel name (cpu): `P ⊙ (dy − Σ_row dy ⊙ P)`. */
export const HOST_SOFTMAX_GRAD = 'MllmHostSoftmaxGrad';

function softmaxRows(out: Float32Array, x: ArrayLike<number>, columns: number, keep: ArrayLike<number> | null, keepOffsets: Int32Array | null, keepColumnStride: number): void {
  const f = Math.fround;
  const rows = out.length / columns;
  for (let row = 0, base = 0; row < rows; row++, base += columns) {
    const k = keepOffsets ? keepOffsets[row]! : 0;
    let max = -Infinity;
    let kept = 0;
    for (let j = 0; j < columns; j++) {
      if (keep && !keep[k + j * keepColumnStride]) continue;
      kept++;
      const v = x[base + j]!;
      if (v > max) max = v;
    }
    if (kept === 0) {
      out.fill(0, base, base + columns);
      continue;
    }
    let sum = 0;
    for (let j = 0; j < columns; j++) {
      const e = keep && !keep[k + j * keepColumnStride] ? 0 : f(Math.exp(f(x[base + j]! - max)));
      out[base + j] = e;
      sum += e;
    }
    const total = f(sum);
    for (let j = 0; j < columns; j++) out[base + j] = out[base + j]! / total;
  }
}

function softmaxKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const logits = args.inputs.logits!;
  const keep = args.inputs.keep ?? null;
  const columns = logits.shape[logits.shape.length - 1]!;
  return withFloat32Output(args.backend, logits.shape, (out, read) => {
    if (!keep) return softmaxRows(out, read(logits), columns, null, null, 0);
    const strides = broadcastStrides(keep.shape, logits.shape); // keep's step per logits axis (0 where broadcast)
    const offsets = rowOffsets(logits.shape, [strides])[0]!; // keep's row per logits row
    softmaxRows(out, read(logits), columns, read(keep), offsets, strides[strides.length - 1]!);
  });
}

/** `dx = P ⊙ (dy − Σ_row dy ⊙ P)` per row of the last axis. */
function softmaxGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const probs = args.inputs.probs!;
  const dy = args.inputs.dy!;
  const columns = probs.shape[probs.shape.length - 1]!;
  return withFloat32Output(args.backend, probs.shape, (out, read) => {
    const p = read(probs);
    const g = read(dy);
    const f = Math.fround;
    for (let base = 0; base < out.length; base += columns) {
      let dot = 0;
      for (let j = 0; j < columns; j++) dot += f(g[base + j]! * p[base + j]!);
      const s = f(dot);
      for (let j = 0; j < columns; j++) out[base + j] = p[base + j]! * f(g[base + j]! - s);
    }
  });
}

interface SoftmaxAttrs {
  /** Shape of `keep` (for its zero gradient), `[]` without one. */
  keepShape: number[];
}

const KERNELS: tf.KernelConfig[] = [
  { kernelName: HOST_SOFTMAX, backendName: 'cpu', kernelFunc: softmaxKernel as unknown as tf.KernelFunc },
  { kernelName: HOST_SOFTMAX_GRAD, backendName: 'cpu', kernelFunc: softmaxGradKernel as unknown as tf.KernelFunc },
];

const GRADIENTS: tf.GradConfig[] = [
  {
    kernelName: HOST_SOFTMAX,
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [probs] = saved as [tf.Tensor];
      return {
        logits: () => tf.engine().runKernel(HOST_SOFTMAX_GRAD, { probs, dy: dy as tf.Tensor } as unknown as tf.NamedTensorMap, {}) as tf.Tensor,
        keep: () => tf.zeros((attrs as unknown as SoftmaxAttrs).keepShape), // a mask: no gradient
      };
    },
  },
  // f(P, g) = P ⊙ (g − s), s = Σ g ⊙ P: ∂/∂g → u ⊙ P − P ⊙ Σ(u ⊙ P); ∂/∂P → u ⊙ (g − s) − g ⊙ Σ(u ⊙ P).
  {
    kernelName: HOST_SOFTMAX_GRAD,
    inputsToSave: ['probs', 'dy'],
    gradFunc: (upstream, saved) => {
      const [p, g] = saved as [tf.Tensor, tf.Tensor];
      const u = upstream as tf.Tensor;
      const uDotP = () => tf.sum(tf.mul(u, p), -1, true);
      return {
        dy: () => tf.sub(tf.mul(u, p), tf.mul(p, uDotP())),
        probs: () => tf.sub(tf.mul(u, tf.sub(g, tf.sum(tf.mul(g, p), -1, true))), tf.mul(g, uDotP())),
      };
    },
  },
];

/** Registers both kernels on cpu; returns whether the active backend runs them. */
export function hostSoftmaxAvailable(): boolean {
  if (tf.getBackend() !== 'cpu' || !hostDataAccessible('cpu')) return false;
  registerKernelsOnce(KERNELS, GRADIENTS);
  return true;
}

/**
 * Softmax of `logits [..., C]` over the last axis with positions where `keep` is 0 excluded (all-masked
 * rows → 0). `keep` broadcasts against the logits from the right (each aligned axis 1 or equal, missing
 * leading axes allowed). cpu only, after {@link hostSoftmaxAvailable}.
 */
export function runHostSoftmax(logits: tf.Tensor, keep: tf.Tensor | null): tf.Tensor {
  const inputs = keep ? { logits, keep } : { logits };
  const attrs: SoftmaxAttrs = { keepShape: keep ? keep.shape : [] };
  return tf.engine().runKernel(HOST_SOFTMAX, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
