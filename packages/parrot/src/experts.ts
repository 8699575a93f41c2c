/**
 * The weighted mixture of E SwiGLU experts over all visual tokens:
 *
 *   M_b = Σ_i w_{b,i} · down_i( silu(H_b·Gate_i) ⊙ (H_b·Up_i) )        [N, D] per sample b
 *
 * Kernels are in the internal `[in, out]` layout: `Gate_i`, `Up_i` `[D, I]`, `Down_i` `[I, D]`.
 * Three equivalent ways to evaluate it (all experts always run: routing is per sample, so every
 * expert is needed by some sample in general, and Parrot's routing is dense):
 *
 * - `separate`: per expert, three 2-D matMuls on the flattened tokens `[B·N, D]`, then a weighted sum,
 *   with the backward written out (`expert-math.ts`, one `tf.customGrad`). The only strategy that can
 *   run experts on worker threads (an {@link ExpertOffload}, see `@mllm/parrot/threads`).
 * - `stacked`:  kernels stacked to `[E, D, I]`, one batched (3-D) matMul per projection.
 * - `wide`:     gate/up kernels concatenated to `[D, E·I]`, down kernels to `[E·I, D]`; the routing
 *   weights scale the activations `[B·N, E, I]` so the sum over experts is folded into one 2-D
 *   matMul: `M = (A ⊙ w) · [Down_1; …; Down_E]`. Three large plain 2-D matMuls in total.
 *
 * All three use core's explicit-transpose `matMul2d`/`batchMatMul` so their gradients stay fast on wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchMatMul, matMul2d, repeatStack, stackFirstAxis, swiGLUGate, transposeLastTwo } from '@mllm/core';
import {
  expertBackward,
  expertForward,
  expertOutputGradient,
  routingWeightGradient,
  weightedSum,
  type ExpertActivations,
  type ExpertGradients,
  type ExpertKernels,
} from './expert-math.js';

export type { ExpertKernels } from './expert-math.js';

/** How the expert mixture is evaluated (same math, different kernels). */
export type ExpertStrategy = 'separate' | 'stacked' | 'wide';

/**
 * Runs some of the experts somewhere else (worker threads: `ExpertThreads` in `@mllm/parrot/threads`)
 * while the calling thread runs the rest. Calls come in pairs: `startForward` then `finishForward`;
 * `startBackward` then `finishBackward`. Start returns at once; finish blocks until the results are
 * back. Results are new tensors on the calling thread's backend, owned by the caller.
 */
export interface ExpertOffload {
  /** Indices of the experts run elsewhere for a mixture of `numExperts` experts (ascending). */
  remoteExperts(numExperts: number): readonly number[];
  /**
   * Start the remote experts' forward on `tokens [M, D]` (`kernels`: all E experts; the remote ones
   * are synced when changed). `keepActivations`: keep what the backward needs. Returns a call id.
   */
  startForward(tokens: tf.Tensor2D, kernels: readonly ExpertKernels[], keepActivations: boolean): number;
  /** The remote experts' outputs `[M, D]`, in `remoteExperts` order. */
  finishForward(callId: number): tf.Tensor2D[];
  /**
   * Start the remote experts' backward for forward `callId`: `dOut [B, N, D]`, `weights [B, E]`
   * (each remote expert's `dy = dOut ⊙ w[:, e]`); `tokens` lets a worker recompute a forward whose
   * activations it no longer holds. `weightGradients` false: only the input gradients.
   */
  startBackward(
    callId: number,
    request: { tokens: tf.Tensor2D; dOut: tf.Tensor3D; weights: tf.Tensor2D; kernels: readonly ExpertKernels[]; weightGradients: boolean },
  ): void;
  /** The remote experts' gradients, in `remoteExperts` order (kernel gradients absent when not asked for). */
  finishBackward(callId: number): ExpertGradients[];
}

/** Options of {@link mixExperts}. */
export interface MixExpertsOptions {
  /** `separate` only: run some experts through this offload (worker threads). */
  offload?: ExpertOffload | null;
  /** `separate` only: whether the backward computes the kernels' gradients (default true; zeros otherwise). */
  weightGradients?: boolean;
}

/**
 * `visual [B, N, D]`, `weights [B, E]`, E expert kernel sets → `[B, N, D]`.
 */
export function mixExperts(
  visual: tf.Tensor3D,
  weights: tf.Tensor2D,
  experts: readonly ExpertKernels[],
  strategy: ExpertStrategy,
  options: MixExpertsOptions = {},
): tf.Tensor3D {
  if (options.offload && strategy !== 'separate') {
    throw new Error(`mixExperts: experts run on worker threads only with strategy 'separate', got '${String(strategy)}'`);
  }
  switch (strategy) {
    case 'separate':
      return mixSeparate(visual, weights, experts, options.offload ?? null, options.weightGradients ?? true);
    case 'stacked':
      return mixStacked(visual, weights, experts);
    case 'wide':
      return mixWide(visual, weights, experts);
    default:
      throw new Error(`mixExperts: strategy must be 'separate', 'stacked' or 'wide', got '${String(strategy)}'`);
  }
}

/** Whether tfjs is recording a gradient tape (inside `tf.grad`/`variableGrads`), seen from inside a customGrad. */
function recordingGradients(): boolean {
  return (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
}

/**
 * `separate` with the backward written out (`expert-math.ts`): local experts run here, remote ones
 * (from `offload`) on worker threads at the same time, in both passes. Outputs and input gradients
 * are summed in expert order, so the result does not depend on where an expert ran.
 */
function mixSeparate(
  visual: tf.Tensor3D,
  weights: tf.Tensor2D,
  experts: readonly ExpertKernels[],
  offload: ExpertOffload | null,
  weightGradients: boolean,
): tf.Tensor3D {
  const [B, N, D] = visual.shape;
  const E = experts.length;
  const remote = offload ? offload.remoteExperts(E) : [];
  const isRemote = new Array<boolean>(E).fill(false);
  for (const e of remote) isRemote[e] = true;
  const kernelInputs = experts.flatMap((k) => [k.gate, k.up, k.down]);
  const mixture = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [visualIn, weightsIn, ...flat] = args.slice(0, -1) as [tf.Tensor3D, tf.Tensor2D, ...tf.Tensor2D[]];
    const kernels = unflattenKernels(flat);
    const tokens = tf.reshape(visualIn, [B * N, D]) as tf.Tensor2D; // [B·N, D]
    const keep = recordingGradients();
    const callId = offload && remote.length > 0 ? offload.startForward(tokens, kernels, keep) : -1;
    const activations: Array<ExpertActivations | null> = kernels.map((k, e) => (isRemote[e] ? null : expertForward(tokens, k)));
    const remoteOutputs = callId >= 0 ? offload!.finishForward(callId) : [];
    const outputs = activations.map((a, e) => (a ? a.output : remoteOutputs[remote.indexOf(e)]!)); // E × [B·N, D]
    const value = weightedSum(outputs, weightsIn, B, N); // [B, N, D]
    // Saved: tokens, weights, kernels, outputs (for dw), local experts' gate/up activations.
    const localSaved = activations.flatMap((a) => (a ? [a.gate, a.up] : []));
    save([tokens, weightsIn, ...flat, ...outputs, ...localSaved]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dOut = dy as tf.Tensor3D; // [B, N, D]
        const sTokens = saved[0] as tf.Tensor2D;
        const sWeights = saved[1] as tf.Tensor2D;
        const sKernels = unflattenKernels(saved.slice(2, 2 + 3 * E) as tf.Tensor2D[]);
        const sOutputs = saved.slice(2 + 3 * E, 2 + 4 * E) as tf.Tensor2D[];
        const sLocal = saved.slice(2 + 4 * E) as tf.Tensor2D[];
        if (callId >= 0) {
          offload!.startBackward(callId, { tokens: sTokens, dOut, weights: sWeights, kernels: sKernels, weightGradients });
        }
        const tokensT = weightGradients ? transposeLastTwo(sTokens) : null; // [D, B·N]
        let localIndex = 0;
        const local: Array<ExpertGradients | null> = sKernels.map((k, e) => {
          if (isRemote[e]) return null;
          const act = { gate: sLocal[2 * localIndex]!, up: sLocal[2 * localIndex + 1]!, output: sOutputs[e]! };
          localIndex += 1;
          return expertBackward(tokensT, k, act, expertOutputGradient(dOut, sWeights, e), weightGradients);
        });
        const remoteGrads = callId >= 0 ? offload!.finishBackward(callId) : [];
        const grads = local.map((g, e) => g ?? remoteGrads[remote.indexOf(e)]!);
        let dx: tf.Tensor2D = grads[0]!.input;
        for (let e = 1; e < E; e++) dx = tf.add(dx, grads[e]!.input) as tf.Tensor2D; // expert order
        const dWeights = routingWeightGradient(dOut, sOutputs); // [B, E]
        const kernelGrads = grads.flatMap((g, e) => [
          g.gate ?? tf.zerosLike(sKernels[e]!.gate),
          g.up ?? tf.zerosLike(sKernels[e]!.up),
          g.down ?? tf.zerosLike(sKernels[e]!.down),
        ]);
        return [tf.reshape(dx, [B, N, D]), dWeights, ...kernelGrads];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (mixture as unknown as (...t: tf.Tensor[]) => tf.Tensor3D)(visual, weights, ...kernelInputs);
}

function unflattenKernels(flat: readonly tf.Tensor2D[]): ExpertKernels[] {
  const kernels: ExpertKernels[] = [];
  for (let i = 0; i < flat.length; i += 3) kernels.push({ gate: flat[i]!, up: flat[i + 1]!, down: flat[i + 2]! });
  return kernels;
}

function mixStacked(visual: tf.Tensor3D, weights: tf.Tensor2D, experts: readonly ExpertKernels[]): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, N, D] = visual.shape;
    const E = experts.length;
    const gate = stackFirstAxis(experts.map((k) => k.gate)) as tf.Tensor3D; // [E, D, I]
    const up = stackFirstAxis(experts.map((k) => k.up)) as tf.Tensor3D; // [E, D, I]
    const down = stackFirstAxis(experts.map((k) => k.down)) as tf.Tensor3D; // [E, I, D]
    const tokens = repeatStack(tf.reshape(visual, [B * N, D]), E) as tf.Tensor3D; // [E, B·N, D] (not broadcastTo: 150× slower on wasm)
    const hidden = swiGLUGate(batchMatMul(tokens, gate), batchMatMul(tokens, up)) as tf.Tensor3D; // silu(g) ⊙ u  [E, B·N, I]
    const y = tf.reshape(batchMatMul(hidden, down), [E, B, N, D]); // [E, B, N, D]
    const w = tf.reshape(tf.transpose(weights), [E, B, 1, 1]); // [E, B, 1, 1]
    return tf.sum(tf.mul(w, y), 0) as tf.Tensor3D; // [B, N, D]
  });
}

function mixWide(visual: tf.Tensor3D, weights: tf.Tensor2D, experts: readonly ExpertKernels[]): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, N, D] = visual.shape;
    const E = experts.length;
    const I = experts[0].gate.shape[1];
    const gate = tf.concat(experts.map((k) => k.gate), 1) as tf.Tensor2D; // [D, E·I]
    const up = tf.concat(experts.map((k) => k.up), 1) as tf.Tensor2D; // [D, E·I]
    const down = tf.concat(experts.map((k) => k.down), 0) as tf.Tensor2D; // [E·I, D]
    const tokens = tf.reshape(visual, [B * N, D]) as tf.Tensor2D; // [B·N, D]
    const hidden = swiGLUGate(matMul2d(tokens, gate), matMul2d(tokens, up)); // silu(g) ⊙ u  [B·N, E·I]
    const scaled = tf.mul(tf.reshape(hidden, [B, N, E, I]), tf.reshape(weights, [B, 1, E, 1])); // [B, N, E, I]
    const flat = tf.reshape(scaled, [B * N, E * I]) as tf.Tensor2D; // [B·N, E·I]
    return tf.reshape(matMul2d(flat, down), [B, N, D]) as tf.Tensor3D; // [B, N, D]
  });
}
