/**
 * `@mllm/models/testing`: the tiny host fixture the packages' tests share — seeded tiny `HostMLLM` /
 * `HostLM` configs (with overrides), deterministic tiny images, a two-sample chat batch, a
 * two-sample token batch with an image slot, and their logits. Pair it with `@mllm/core/testing`
 * (tolerances, leak checks, float64 kit). The same seed and overrides always give the same weights,
 * so a test can build "the same base model" twice (e.g. to load a saved adapter into a fresh host).
 */
import * as tf from '@tensorflow/tfjs-core';
import { setSeed, type VisualProjector } from '@mllm/core';
import { HostLM } from '../model/host-lm.js';
import { HostMLLM, type HostMLLMArgs } from '../model/host-mllm.js';
import { collateChat, type MultimodalBatch } from '../model/collate.js';
import { IGNORE_INDEX } from '../tokenizer/byte-tokenizer.js';
import type { HostConfig, VisionConfig } from '../model/config.js';

/** The default ByteTokenizer's vocabulary: 256 bytes + 6 specials. */
export const TINY_VOCAB = 262;

/** Tiny decoder config: hidden 16, 2 layers × 2 heads, SwiGLU 24, RoPE θ 10000, 256 positions. */
export function tinyTextConfig(overrides: Partial<HostConfig> = {}): HostConfig {
  return { vocabSize: TINY_VOCAB, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 256, ...overrides };
}

/** Tiny vision config: 8×8×3 images in 4×4 patches (4 patches), width 12, 1 layer × 2 heads. */
export function tinyVisionConfig(overrides: Partial<VisionConfig> = {}): VisionConfig {
  return { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, ...overrides };
}

/** Options of `tinyHost` beyond the configs. */
export interface TinyHostOptions extends Omit<HostMLLMArgs, 'config' | 'projector'> {
  /**
   * Builds the projector (e.g. a Q-Former VPG over the 12-wide patch features). Called after the
   * seed is set and before the host's own layers, so its weights are part of the seeded sequence.
   */
  projector?: () => VisualProjector;
}

/**
 * A seeded tiny HostMLLM (4 patches → 4 visual tokens with the default `'patch'` features, 5 with
 * `'cls_patch'`). `text` / `vision` override fields of `tinyTextConfig` / `tinyVisionConfig`.
 */
export function tinyHost(seed = 1, text: Partial<HostConfig> = {}, vision: Partial<VisionConfig> = {}, options: TinyHostOptions = {}): HostMLLM {
  setSeed(seed);
  const { projector, ...rest } = options;
  const built = projector?.();
  return new HostMLLM({ ...rest, config: { text: tinyTextConfig(text), vision: tinyVisionConfig(vision) }, ...(built ? { projector: built } : {}) });
}

/** A seeded tiny text-only HostLM (`tinyTextConfig(text)`). */
export function tinyLM(seed = 1, text: Partial<HostConfig> = {}): HostLM {
  setSeed(seed);
  return new HostLM({ config: tinyTextConfig(text) });
}

/** `[n, size, size, 3]` deterministic pixels in [0, 1] (caller disposes). */
export function tinyImages(n: number, seed = 7, size = 8): tf.Tensor4D {
  return tf.randomUniform([n, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/**
 * A collated two-sample chat batch: sample 0 asks about two images, sample 1 about one (images
 * `tinyImages(3, seed)`). Caller disposes it (`disposeBatch`).
 */
export function tinyChatBatch(model: HostMLLM, seed = 3): MultimodalBatch {
  const images = tinyImages(3, seed);
  const [a, b, c] = tf.unstack(images) as tf.Tensor3D[];
  const batch = collateChat(model.tokenizer, [
    { messages: [{ role: 'user', content: '<image> and <image>: what changed?' }, { role: 'assistant', content: 'The red square.' }], images: [a, b] },
    { messages: [{ role: 'user', content: '<image> which?' }, { role: 'assistant', content: 'Image 1.' }], images: [c] },
  ]);
  tf.dispose([a, b, c, images]);
  return batch;
}

/**
 * Token rows of a two-sample batch: sample 0 is prompt, image, prompt and two supervised answer
 * tokens; sample 1 is text, image, text and right padding (all labels ignored).
 */
export function tinyTokenRows(model: HostMLLM): { ids: number[][]; labels: number[][] } {
  const img = model.tokenizer.imageId;
  const pad = model.tokenizer.padId;
  const ids = [
    [72, 105, img, 120, 121, 122, 123],
    [65, img, 67, 68, 69, pad, pad],
  ];
  const labels = [
    [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 122, 123],
    ids[1]!.map(() => IGNORE_INDEX),
  ];
  return { ids, labels };
}

/**
 * A batch of right-padded token rows `[B, T]` (attention mask 0 at the tokenizer's pad id), with
 * precomputed image features `[numImages, Nv, Dv]` for its image placeholders (nested numbers or a
 * tensor, which is cloned; `null` for text only) and optional labels. Caller disposes it (`disposeBatch`).
 */
export function tokenBatch(model: HostMLLM, ids: number[][], imageFeatures: number[][][] | tf.Tensor3D | null = null, labels?: number[][]): MultimodalBatch {
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(ids.map((row) => row.map((id) => (id === model.tokenizer.padId ? 0 : 1))), undefined, 'int32'),
    ...(labels ? { labels: tf.tensor2d(labels, undefined, 'int32') } : {}),
    imageFeatures: imageFeatures === null ? null : imageFeatures instanceof tf.Tensor ? imageFeatures.clone() : tf.tensor3d(imageFeatures),
  };
}

/** `tinyTokenRows` as a batch with precomputed image features `[2, Nv, Dv]` (one image per sample; see `tokenBatch`). */
export function tinyTokenBatch(model: HostMLLM, imageFeatures: number[][][] | tf.Tensor3D): MultimodalBatch {
  const { ids, labels } = tinyTokenRows(model);
  return tokenBatch(model, ids, imageFeatures, labels);
}

/** Disposes every tensor of a batch. */
export function disposeBatch(batch: MultimodalBatch): void {
  tf.dispose(Object.values(batch).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
}

/** The logits `[B, L, V]` of `model.forward(batch)` as nested numbers (no tensors left behind). */
export function logitsOf(model: HostMLLM, batch: MultimodalBatch): number[][][] {
  const out = model.forward(batch);
  const values = out.logits.arraySync() as number[][][];
  tf.dispose([out.logits, out.attentionMask]);
  out.labels?.dispose();
  return values;
}
