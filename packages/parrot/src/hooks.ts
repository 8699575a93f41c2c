/**
 * Plugging Parrot into the host MLLM through the `transformVisual` hook.
 *
 * The host calls `transformVisual` once per forward/prefill with every image's projected tokens
 * `visual [numImages, N, D]` and the text embeddings of each *sample* `[B, T, D]` with its prompt
 * mask `[B, T]` (1 = non-supervised prompt text token: system prompt, chat template, user turns —
 * exactly the tokens the reference feeds its MoE). Each image is routed with the text of the
 * sample it belongs to (`imageToSample`). The reference only runs on prefill (its MoE is skipped
 * for single-token decode steps), which is when the host splices images.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '@mllm/core';
import type { ParrotMoE, ParrotMoEOutputs } from './parrot-moe.js';

/** Arguments of the host's `transformVisual` hook (see the host `DecoderHooks`). */
export interface TransformVisualArgs {
  /** `[numImages, N, D]` projected visual tokens, row 0 = CLS. */
  visual: tf.Tensor3D;
  /** `[B, T, D]` embeddings of each sample's text tokens. */
  textEmbeddings: tf.Tensor3D;
  /** `[B, T]` 1 = prompt (non-supervised) text token. */
  promptTextMask: tf.Tensor2D;
  /** `[numImages]` sample index of each image. */
  imageToSample: number[];
}

/** The subset of the host `DecoderHooks` that Parrot provides. */
export interface ParrotHooks {
  transformVisual(args: TransformVisualArgs): tf.Tensor3D;
  requiresFullSequence: false;
  modules(): Module[];
}

export interface ParrotHooksOptions {
  /**
   * Called with every forward's outputs (routing weights, text attention, aux loss) before they
   * are disposed; `clone()` what you keep (and `tf.keep` it when inside a tidy). Inside a gradient
   * scope `auxLoss` can be added to the training loss here.
   */
  onForward?: (outputs: Omit<ParrotMoEOutputs, 'output'>) => void;
}

/** Gather per-image rows of a per-sample tensor: `x [B, ...]`, `imageToSample [numImages]` → `[numImages, ...]`. */
function gatherSamples<T extends tf.Tensor>(x: T, imageToSample: number[]): T {
  return tf.tidy(() => tf.gather(x, tf.tensor1d(imageToSample, 'int32'), 0)) as T;
}

/**
 * Host hooks for a Parrot MoE: `transformVisual` replaces each image's projected tokens by
 * `moe.forward({visual, text: its sample's text, textMask: its sample's prompt mask}).output`.
 */
export function parrotHooks(moe: ParrotMoE, options: ParrotHooksOptions = {}): ParrotHooks {
  return {
    requiresFullSequence: false,
    modules: () => [moe],
    transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample }: TransformVisualArgs): tf.Tensor3D {
      const numImages = visual.shape[0];
      const B = textEmbeddings.shape[0];
      if (!Array.isArray(imageToSample) || imageToSample.length !== numImages) {
        throw new Error(`parrotHooks.transformVisual: imageToSample must have ${numImages} entries (one per image), got ${JSON.stringify(imageToSample)}`);
      }
      const bad = imageToSample.find((s) => !Number.isInteger(s) || s < 0 || s >= B);
      if (bad !== undefined) {
        throw new Error(`parrotHooks.transformVisual: imageToSample entries must be sample indices in [0, ${B}), got ${bad}`);
      }
      if (numImages === 0) return tf.clone(visual);
      const text = gatherSamples(textEmbeddings, imageToSample); // [numImages, T, D]
      const textMask = gatherSamples(promptTextMask, imageToSample); // [numImages, T]
      try {
        const { output, ...rest } = moe.forward({ visual, text, textMask });
        try {
          options.onForward?.(rest);
        } finally {
          rest.routingWeights.dispose();
          rest.textAttention.dispose();
          rest.auxLoss?.dispose();
        }
        return output;
      } finally {
        text.dispose();
        textMask.dispose();
      }
    },
  };
}
