/**
 * Hook contract of the host MLLM (the host itself is in `@mllm/models`): module packages (Parrot, Wings, VPG-C) plug in here and never
 * fork the model. Host decoder layer order, per layer ℓ:
 *
 *   h_in ← beforeLayer(ℓ, h_in, ctx) ?? h_in                  (at the layer input, before norm1)
 *   a    = attn(norm1(h_in))                                   probs P [B, heads, Lq, Lk] if requested
 *   h    = h_in + a
 *   h    ← afterAttention(ℓ, { residual: h, attentionInput: norm1(h_in), attentionProbs: P|null,
 *                              layerInput: h_in }, ctx) ?? h
 *   h_out = h + mlp(norm2(h))
 *
 * Several hooks may be attached (`addHooks`); each point runs them in attach order, each seeing the
 * previous one's replacement. Tensors in `ctx` and in the arguments belong to the host and are
 * disposed after the forward: copy (`tf.keep(x.clone())`) anything kept beyond the call.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import type { ModuleRecord } from '../adapter/attached-module.js';

/** Which encoder rows go to the projector: `patch` drops row 0 (CLS; LLaVA default), `cls_patch` keeps it (Parrot). */
export type VisionSelectFeature = 'patch' | 'cls_patch';

/** An image's token span in the spliced sequence. */
export interface ImageSpan {
  /** Index into `imageFeatures` / `visualTokens` (images in batch order). */
  imageIndex: number;
  /** First position of the image's tokens in the spliced sequence. */
  start: number;
  /** Number of visual tokens (Ni). */
  length: number;
}

/**
 * What every hook sees about the current forward. Masks are float32 1/0, positions int32.
 * On a cached decode step (`isPrefill: false`) the per-position tensors (`inputEmbeddings`,
 * `positions`, `attentionMask`, `textMask`, `promptMask`, `systemMask`) cover only the new token(s)
 * `[B, 1, ...]`; the per-sample/per-image fields still describe the prompt.
 */
export interface ForwardContext {
  /** `[B, L, H]` layer-0 embeddings after splicing image tokens (padding rows are zeros). */
  inputEmbeddings: tf.Tensor3D;
  /** `[B, L]` int32 real positions (0.. per sample; right padding continues the count). */
  positions: tf.Tensor2D;
  /** `[B, L]` 1 = real token, 0 = padding. */
  attentionMask: tf.Tensor2D;
  /** `[B, L]` 1 = real text token (not image, not padding). */
  textMask: tf.Tensor2D;
  /** `[B, L]` 1 = non-supervised prompt text token (label ignored, not image, not padding). */
  promptMask: tf.Tensor2D;
  /** `[B, L]` 1 = token of the system turn (all 0 when the batch did not say). Extra field. */
  systemMask: tf.Tensor2D;
  /** Per sample, in order; `imageIndex` indexes imageFeatures / visualTokens. */
  imageSpans: ImageSpan[][];
  /** `[numImages]` sample of each image. */
  imageToSample: number[];
  /** `[B]` float 1/0. */
  hasImage: tf.Tensor1D;
  /** `[numImages, Nv, Dv]` vision features fed to the projector (null without images). */
  imageFeatures: tf.Tensor3D | null;
  /** `[numImages, Ni, H]` projector output after transformVisual: what was spliced (null without images). */
  visualTokens: tf.Tensor3D | null;
  /**
   * `[B]` index of the last prompt token: the position just before the first supervised label
   * (images included), or the last real token when nothing is supervised (inference).
   */
  lastPromptIndex: number[];
  /** True for a full forward and the generation prefill; false for cached decode steps. */
  isPrefill: boolean;
  /** Lookup tables the host derives once per forward from `imageSpans` (modules read them, never re-walk spans). */
  imageTables: ImageTables;
}

/**
 * Per-forward lookup tables of the image tokens (see `imageTablesFromSpans`). On cached decode steps
 * they still describe the prompt, like `imageSpans`.
 */
export interface ImageTables {
  /** Per sample, its images (indices into `visualTokens` / `imageFeatures`) in sequence order. */
  imagesOfSample: number[][];
  /** Per sample, the row of each image token in `visualTokens` flattened to `[numImages·Ni, H]`, sequence order. */
  visualRows: number[][];
  /** Per sample, the sequence index of each image token (same order as `visualRows`). */
  visualPositions: number[][];
}

/**
 * The image-token tables of a batch: image `i`'s token `k` (`k < span.length`) sits at sequence index
 * `span.start + k` and is row `i·Ni + k` of the flattened visual tokens (`Ni` = the span's length,
 * the same for every image of a host).
 */
export function imageTablesFromSpans(imageSpans: ImageSpan[][]): ImageTables {
  const imagesOfSample: number[][] = [];
  const visualRows: number[][] = [];
  const visualPositions: number[][] = [];
  for (const spans of imageSpans) {
    const images: number[] = [];
    const rows: number[] = [];
    const positions: number[] = [];
    for (const { imageIndex, start, length } of [...spans].sort((a, b) => a.start - b.start)) {
      images.push(imageIndex);
      for (let k = 0; k < length; k++) {
        rows.push(imageIndex * length + k);
        positions.push(start + k);
      }
    }
    imagesOfSample.push(images);
    visualRows.push(rows);
    visualPositions.push(positions);
  }
  return { imagesOfSample, visualRows, visualPositions };
}

export interface TransformVisualArgs {
  /** `[numImages, Ni, H]` projected visual tokens. */
  visual: tf.Tensor3D;
  /**
   * `[B, T, H]` token-embedding-table rows of each sample's text tokens (T = padded text length of
   * the batch; image-placeholder and padding slots are present but masked out by promptTextMask).
   */
  textEmbeddings: tf.Tensor3D;
  /** `[B, T]` float 1 = prompt text token (label ignored, not image, not padding). */
  promptTextMask: tf.Tensor2D;
  /** `[numImages]` sample of each image. */
  imageToSample: number[];
  /**
   * The vision tower's feature selection: `cls_patch` when the projected row 0 of each image comes
   * from the CLS token, `patch` when CLS was dropped (so a hook that needs CLS, e.g. Parrot, can refuse).
   */
  visionSelectFeature: VisionSelectFeature;
}

export interface AfterAttentionArgs {
  /** `[B, L, H]` h_in + attn(norm1(h_in)). */
  residual: tf.Tensor3D;
  /** `[B, L, H]` what the self-attention received: norm1(h_in). */
  attentionInput: tf.Tensor3D;
  /** `[B, heads, L, Lk]` main attention probabilities, only for layers in the hook's `attentionProbsLayers`. */
  attentionProbs: tf.Tensor4D | null;
  /** `[B, L, H]` h_in (the layer input, after beforeLayer). Extra field. */
  layerInput: tf.Tensor3D;
}

export interface DecoderHooks {
  /**
   * Once per forward (full forward, prefill, and every cached decode step), before layer 0, inside the
   * host's tidy: build what every layer reuses (Wings' learner keys) here instead of once per layer.
   * A returned function runs after the forward (drop references to per-forward values there).
   * With several hooks, each `prepare` runs in attach order.
   */
  prepare?(ctx: ForwardContext): void | (() => void);
  /** Transform projected visual tokens before splicing (Parrot). Runs once per full forward/prefill. */
  transformVisual?(args: TransformVisualArgs): tf.Tensor3D;
  /** At layer `layerIndex`'s input (VPG-C); return a replacement `[B, L, H]` or null. */
  beforeLayer?(layerIndex: number, hidden: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D | null;
  /** After the attention residual, before the MLP (Wings); return a replacement `[B, L, H]` or null. */
  afterAttention?(layerIndex: number, args: AfterAttentionArgs, ctx: ForwardContext): tf.Tensor3D | null;
  /** Layers whose attention probabilities this hook needs. */
  attentionProbsLayers?: number[];
  /** The hook cannot run on cached single-token decode steps: generate() then re-runs full sequences. */
  requiresFullSequence?: boolean;
  /**
   * Trainable modules owned by the hook, registered as children of the model while attached, under
   * `hooks.<attachId>.<i>` (attachId counts addHooks calls from 0 on this model).
   */
  modules?(): Module[];
  /**
   * Alternative to `modules()`: modules with the names they take in the model's state dict,
   * e.g. `['model.layers.3.attn_pool', learner]`, so reference checkpoints load in one call. Extra field.
   */
  namedModules?(): Array<[string, Module]>;
  /**
   * The module this hook belongs to (set by `attachModule`): a host saved with this hook records it
   * in `config.json` and re-attaches it on load. Hooks without it cannot be saved with the host.
   */
  moduleRecord?(): ModuleRecord;
}

/** Handle returned by `addHooks`. */
export interface HookHandle {
  /** Detach the hooks and unregister their modules (not disposed: the caller owns them). Idempotent. */
  remove(): void;
}

/** A pluggable visual projector (default `MlpGeluProjector`; @mllm/vpgc provides a Q-Former VPG). */
export interface VisualProjector {
  /** `[numImages, Nv, Dv] → [numImages, Ni, H]` (typed `tf.Tensor` so core Modules fit; rank 3 is checked). */
  forward(features: tf.Tensor3D): tf.Tensor;
}
