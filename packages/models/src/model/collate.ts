/**
 * Collation: tokenized samples (or chat conversations) + images → one right-padded batch.
 *
 *   inputIds [B, T] int32 (pad = padId), attentionMask [B, T] int32 (1 = real),
 *   labels [B, T] int32 (IGNORE = −100 on prompt and padding), systemMask [B, T] int32,
 *   images [numImages, S, S, C] float32 in placeholder order (sample 0's first).
 */
import * as tf from '@tensorflow/tfjs-core';
import { IGNORE_INDEX, type Tokenizer } from '../tokenizer/byte-tokenizer.js';
import { encodeChat, type ChatMessage, type ChatTemplateOptions } from '../tokenizer/chat-template.js';

/** Input of `HostMLLM.forward` / `loss`. The caller owns (and disposes) the tensors. */
export interface MultimodalBatch {
  /** `[B, T]` int32, right-padded; image placeholders = the tokenizer's imageId. */
  inputIds: tf.Tensor2D;
  /** `[B, T]` 1 = real token; must be 1…1 0…0 per row (right padding). Default: all ones. */
  attentionMask?: tf.Tensor2D | null;
  /** `[B, T]` int32 targets aligned with inputIds (the loss shifts); IGNORE_INDEX = not supervised. */
  labels?: tf.Tensor2D | null;
  /** `[B, T]` 1 = system-turn token (fills `ForwardContext.systemMask`). */
  systemMask?: tf.Tensor2D | null;
  /** `[numImages, S, S, C]` pixels in [0, 1], in placeholder order across the batch. */
  images?: tf.Tensor4D | null;
  /** `[numImages, Nv, Dv]` precomputed vision features (then `images` is not used). */
  imageFeatures?: tf.Tensor3D | null;
}

export interface TokenizedSample {
  inputIds: number[];
  labels?: number[];
  systemMask?: number[];
  /** This sample's images: a list of `[S, S, C]` or one `[n, S, S, C]` tensor (not disposed by collate). */
  images?: tf.Tensor3D[] | tf.Tensor4D | null;
}

export interface CollateOptions {
  padId: number;
  /** When given, each sample's image count must equal its placeholder count. */
  imageTokenId?: number;
}

function imagesOf(sample: TokenizedSample): tf.Tensor3D[] {
  if (!sample.images) return [];
  if (Array.isArray(sample.images)) return sample.images;
  return tf.unstack(sample.images) as tf.Tensor3D[];
}

/** Pad token rows and stack images (new tensors, owned by the caller). */
export function collate(samples: TokenizedSample[], options: CollateOptions): MultimodalBatch {
  if (!Array.isArray(samples) || samples.length === 0) throw new Error(`collate: samples must be a non-empty array, got ${samples?.length ?? typeof samples}`);
  const B = samples.length;
  const T = Math.max(...samples.map((s) => s.inputIds.length), 1);
  const ids = new Int32Array(B * T).fill(options.padId);
  const mask = new Int32Array(B * T);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const system = new Int32Array(B * T);
  const anyLabels = samples.some((s) => s.labels);
  const anySystem = samples.some((s) => s.systemMask);
  samples.forEach((s, b) => {
    if (s.labels && s.labels.length !== s.inputIds.length) {
      throw new Error(`collate: samples[${b}].labels must have length ${s.inputIds.length}, got ${s.labels.length}`);
    }
    if (s.systemMask && s.systemMask.length !== s.inputIds.length) {
      throw new Error(`collate: samples[${b}].systemMask must have length ${s.inputIds.length}, got ${s.systemMask.length}`);
    }
    s.inputIds.forEach((id, t) => {
      ids[b * T + t] = id;
      mask[b * T + t] = 1;
      if (s.labels) labels[b * T + t] = s.labels[t];
      if (s.systemMask) system[b * T + t] = s.systemMask[t] ? 1 : 0;
    });
  });
  const perSample = samples.map(imagesOf);
  if (options.imageTokenId !== undefined) {
    samples.forEach((s, b) => {
      const placeholders = s.inputIds.filter((id) => id === options.imageTokenId).length;
      if (placeholders !== perSample[b].length) {
        throw new Error(`collate: samples[${b}] has ${placeholders} image placeholders but ${perSample[b].length} images`);
      }
    });
  }
  const allImages = perSample.flat();
  const images = allImages.length ? (tf.tidy(() => tf.cast(tf.stack(allImages), 'float32')) as tf.Tensor4D) : null;
  samples.forEach((s, b) => { if (s.images && !Array.isArray(s.images)) perSample[b].forEach((t) => t.dispose()); });
  return {
    inputIds: tf.tensor2d(ids, [B, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, T], 'int32'),
    labels: anyLabels ? tf.tensor2d(labels, [B, T], 'int32') : null,
    systemMask: anySystem ? tf.tensor2d(system, [B, T], 'int32') : null,
    images,
  };
}

export interface ChatSample {
  messages: ChatMessage[];
  images?: tf.Tensor3D[] | tf.Tensor4D | null;
}

/**
 * Encode conversations with the chat template (labels supervise assistant turns) and collate.
 * @throws Error when a conversation supervises no token (it has no assistant turn): its
 *   loss would be a silent 0 (`-0`) that trains nothing. Prompt-only input goes to `generate` / `scoreOptions`.
 */
export function collateChat(tokenizer: Tokenizer, samples: ChatSample[], options: ChatTemplateOptions = {}): MultimodalBatch {
  const tokenized = samples.map((s, b): TokenizedSample => {
    const enc = encodeChat(tokenizer, s.messages, options);
    if (!enc.labels.some((label) => label !== IGNORE_INDEX)) {
      const roles = Array.isArray(s.messages) ? s.messages.map((m) => m?.role).join(', ') : typeof s.messages;
      throw new Error(
        `collateChat: samples[${b}].messages supervise no token (roles: ${roles || 'none'}); a training conversation needs a non-empty ` +
          `'assistant' turn, else its loss is 0 and nothing is learned (prompt-only input goes to generate / scoreOptions)`,
      );
    }
    return { inputIds: enc.inputIds, labels: enc.labels, systemMask: enc.systemMask, images: s.images };
  });
  return collate(tokenized, { padId: tokenizer.padId, imageTokenId: tokenizer.imageId });
}

/** Dispose every tensor of a batch. */
export function disposeBatch(batch: MultimodalBatch): void {
  for (const t of [batch.inputIds, batch.attentionMask, batch.labels, batch.systemMask, batch.images, batch.imageFeatures]) t?.dispose();
}
