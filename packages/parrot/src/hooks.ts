/**
 * Plugging Parrot into the host MLLM through the `transformVisual` hook.
 *
 * The host calls `transformVisual` once per forward/prefill with every image's projected tokens
 * `visual [numImages, N, D]` and the text embeddings of each *sample* `[B, T, D]` with its prompt
 * mask `[B, T]` (1 = non-supervised prompt text token: system prompt, chat template, user turns —
 * exactly the tokens the reference feeds its MoE). Each image is routed with the text of the
 * sample it belongs to (`imageToSample`). The reference only runs on prefill (its MoE is skipped
 * for single-token decode steps), which is when the host splices images.
 *
 * Parrot's query is the projected CLS token (row 0 of each image's tokens; the reference asserts
 * `mm_vision_select_feature == 'cls_patch'`). The host says which rows it projected
 * (`visionSelectFeature`); anything but `cls_patch` is refused, since row 0 would then be the first
 * patch and the routing silently wrong.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DecoderHooks, Module, TransformVisualArgs } from '@mllm/core';
import { PARROT_CHECKPOINT_PREFIX, type ParrotMoE, type ParrotMoEOutputs } from './parrot-moe.js';

/** The host `DecoderHooks` that Parrot provides (see `@mllm/core` `model/hooks.ts`). */
export interface ParrotHooks extends DecoderHooks {
  transformVisual(args: TransformVisualArgs): tf.Tensor3D;
  requiresFullSequence: false;
  /** `[[childName, moe]]`: the MoE's parameters appear in the host as `model.moe_model.*` (the reference names). */
  namedModules(): Array<[string, Module]>;
}

export interface ParrotHooksOptions {
  /**
   * Name of the MoE inside the host model (default `model.moe_model`, as in
   * `ParrotQwen2ForCausalLM`), so a full Parrot checkpoint loads into the host in one call.
   */
  childName?: string;
  /**
   * Samples with several images. `clean` (default): every image goes through the MoE with its
   * sample's text. `reference`: reproduce AIDC-AI/Parrot's `prepare_inputs_labels_for_multimodal`,
   * which runs the MoE only on the first image of a sample and splices **zeros** for its later
   * images (their slots in a zero-initialised buffer are never written) — in both stages.
   */
  multiImage?: 'clean' | 'reference';
  /**
   * Called with every forward's outputs (routing weights, text attention, aux loss) before they
   * are disposed; `clone()` what you keep (and `tf.keep` it when inside a tidy). Inside a gradient
   * scope `auxLoss` can be added to the training loss here.
   */
  onForward?: (outputs: Omit<ParrotMoEOutputs, 'output'>) => void;
}

/**
 * Per-image rows of a per-sample tensor: `x [B, ...]`, `imageToSample [numImages]` → `[numImages, ...]`.
 * Slices + concat rather than `tf.gather`, whose gradient (`UnsortedSegmentSum`) the wasm backend lacks.
 */
function gatherSamples<T extends tf.Tensor>(x: T, imageToSample: number[]): T {
  return tf.tidy(() => {
    const rows = imageToSample.map((s) => tf.slice(x, [s, ...x.shape.slice(1).map(() => 0)], [1, ...x.shape.slice(1)])); // each [1, ...]
    return rows.length === 1 ? rows[0] : tf.concat(rows, 0); // [numImages, ...]
  }) as T;
}

/**
 * Host hooks for a Parrot MoE: `transformVisual` replaces each image's projected tokens by
 * `moe.forward({visual, text: its sample's text, textMask: its sample's prompt mask}).output`.
 *
 * @deprecated since 0.2: use `attachParrot(host, { moe, multiImage, onForward })`, which also
 * checks the host's `vision_select_feature` at attach time and records the MoE in saved files
 * (`saveAdapter`, hosts saved with their modules). Kept for one minor version.
 */
export function parrotHooks(moe: ParrotMoE, options: ParrotHooksOptions = {}): ParrotHooks {
  if (typeof options !== 'object' || options === null) throw new Error(`parrotHooks: options must be an object, got ${options === null ? 'null' : typeof options}`);
  const childName = options.childName ?? PARROT_CHECKPOINT_PREFIX.slice(0, -1);
  return { ...createParrotHooks('parrotHooks', moe, options), namedModules: () => [[childName, moe]] };
}

/** The `transformVisual` hook of `attachParrot` and `parrotHooks` (`owner` names the caller in errors). */
export function createParrotHooks(
  owner: string,
  moe: ParrotMoE,
  options: Pick<ParrotHooksOptions, 'multiImage' | 'onForward'>,
): Pick<ParrotHooks, 'transformVisual' | 'requiresFullSequence'> {
  if (!moe || typeof (moe as { forward?: unknown }).forward !== 'function' || typeof moe.numExperts !== 'number') {
    throw new Error(`${owner}: moe must be a ParrotMoE, got ${moe === null ? 'null' : typeof moe}`);
  }
  const multiImage = options.multiImage ?? 'clean';
  if (multiImage !== 'clean' && multiImage !== 'reference') {
    throw new Error(`${owner}: multiImage must be 'clean' or 'reference', got ${JSON.stringify(options.multiImage)}`);
  }
  return {
    requiresFullSequence: false,
    transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample, visionSelectFeature }: TransformVisualArgs): tf.Tensor3D {
      if (visionSelectFeature !== 'cls_patch') {
        throw new Error(
          `${owner} (transformVisual): Parrot routes each image with its projected CLS token (row 0), so the host must keep it: ` +
            `visionSelectFeature (the vision config's selectFeature) must be 'cls_patch', got ${JSON.stringify(visionSelectFeature)}`,
        );
      }
      const numImages = visual.shape[0];
      const B = textEmbeddings.shape[0];
      if (!Array.isArray(imageToSample) || imageToSample.length !== numImages) {
        throw new Error(`${owner} (transformVisual): imageToSample must have ${numImages} entries (one per image), got ${JSON.stringify(imageToSample)}`);
      }
      const bad = imageToSample.find((s) => !Number.isInteger(s) || s < 0 || s >= B);
      if (bad !== undefined) {
        throw new Error(`${owner} (transformVisual): imageToSample entries must be sample indices in [0, ${B}), got ${bad}`);
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
        if (multiImage === 'clean') return output;
        const keep = imageToSample.map((sample, i) => (imageToSample.indexOf(sample) === i ? 1 : 0));
        if (keep.every((k) => k === 1)) return output;
        const zeroed = tf.tidy(() => tf.mul(output, tf.tensor3d(keep, [numImages, 1, 1]))) as tf.Tensor3D; // [numImages, N, D]
        output.dispose();
        return zeroed;
      } finally {
        text.dispose();
        textMask.dispose();
      }
    },
  };
}
