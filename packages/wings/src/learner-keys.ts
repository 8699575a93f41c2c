/**
 * Key/value sources of the two learners, built from the host's forward context (the same for
 * every layer):
 *
 * - visual: the projector output (`visualTokens [numImages, Ni, H]`) of each sample's images,
 *   concatenated per sample in sequence order, at the images' real positions in the sequence;
 *   samples with fewer image tokens are right-padded with masked keys.
 * - textual (clean): the layer-0 embeddings `inputEmbeddings [B, L, H]` at real positions, keys
 *   restricted to text tokens by `textMask` (and, for image samples, to positions from
 *   `systemPromptLength` on), causal by real position.
 * - textual (reference-compat `misalignedTextMask`): see `ReferenceCompat.misalignedTextMask`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LearnerKeys } from './wings-layer.js';
import { gatherRows as gatherTableRows, imageTablesFromSpans, type ForwardContext, type ImageSpan, type ImageTables } from '@mllm/core';

/**
 * The fields of core's `ForwardContext` the learners read (a test or a hand-driven layer builds
 * just these; the host passes its whole context). `imageTables` is optional here: the host always
 * sets it (derived once per forward); without it the visual keys derive the tables from `imageSpans`.
 */
export type WingsKeyContext = Pick<
  ForwardContext,
  'inputEmbeddings' | 'positions' | 'attentionMask' | 'textMask' | 'imageSpans' | 'hasImage' | 'visualTokens' | 'isPrefill'
> & { imageTables?: ImageTables };

/** True when some sample has an image token (read from the host's tables when present). */
export function hasImageTokens(ctx: WingsKeyContext): boolean {
  return ctx.imageTables ? ctx.imageTables.visualRows.some((rows) => rows.length > 0) : ctx.imageSpans.some((spans) => spans.length > 0);
}

/**
 * The image-token tables of a hand-built context, after checking each span against the visual
 * tokens `[numImages, Ni, H]` (the host's own spans are consistent by construction).
 */
function checkedTablesFromSpans(imageSpans: ImageSpan[][], numImages: number, Ni: number): ImageTables {
  imageSpans.forEach((spans, b) => {
    for (const span of spans) {
      if (span.imageIndex < 0 || span.imageIndex >= numImages) {
        throw new Error(`Wings: imageSpans[${b}] imageIndex ${span.imageIndex} is outside [0, ${numImages})`);
      }
      if (span.length !== Ni || span.start < 0) {
        throw new Error(`Wings: imageSpans[${b}] span (start ${span.start}, length ${span.length}) must hold the image's ${Ni} visual tokens`);
      }
    }
  });
  return imageTablesFromSpans(imageSpans);
}

/** @deprecated Use `WingsKeyContext` (a `Pick` of `@mllm/core`'s `ForwardContext`); removed in the next minor version. */
export type WingsForwardContext = WingsKeyContext;

/**
 * Visual keys for every sample (null when the batch has no image tokens). Key positions are the
 * image tokens' sequence indices (= real positions: the host counts positions from 0 per sample
 * with right padding), so this also works on cached decode steps, where `imageSpans` and
 * `visualTokens` still describe the prompt. Call inside a tidy.
 */
export function buildVisualKeys(ctx: WingsKeyContext, causalByPosition = false): LearnerKeys | null {
  const tokens = ctx.visualTokens;
  const B = ctx.inputEmbeddings.shape[0];
  const H = ctx.inputEmbeddings.shape[2];
  if (!tokens || !hasImageTokens(ctx)) return null;
  const [numImages, Ni, Hv] = tokens.shape;
  if (Hv !== H) throw new Error(`Wings: visualTokens must be [numImages, Ni, ${H}], got [${tokens.shape.join(', ')}]`);
  const sampleCount = ctx.imageTables ? ctx.imageTables.visualRows.length : ctx.imageSpans.length;
  if (sampleCount !== B) {
    throw new Error(`Wings: ${ctx.imageTables ? 'imageTables.visualRows' : 'imageSpans'} must have ${B} entries (one per sample), got ${sampleCount}`);
  }
  // Per sample: the row of each image token in the flattened visual tokens and its sequence index.
  const { visualRows: rows, visualPositions: sequenceIndex } = ctx.imageTables ?? checkedTablesFromSpans(ctx.imageSpans, numImages, Ni);
  const Nk = Math.max(...rows.map((r) => r.length));
  const gatherRows = new Int32Array(B * Nk);
  const keyPositions = new Int32Array(B * Nk);
  const keyMask = new Float32Array(B * Nk);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < Nk; k++) {
      const real = k < rows[b].length;
      gatherRows[b * Nk + k] = real ? rows[b][k] : 0;
      keyPositions[b * Nk + k] = real ? sequenceIndex[b][k] : 0;
      keyMask[b * Nk + k] = real ? 1 : 0;
    }
  }
  const flatTokens = tf.reshape(tokens, [numImages * Ni, H]); // [numImages·Ni, H]
  const source = tf.reshape(gatherTableRows(flatTokens as tf.Tensor2D, gatherRows), [B, Nk, H]) as tf.Tensor3D; // [B, Nk, H]
  return {
    source,
    positions: tf.tensor2d(keyPositions, [B, Nk], 'int32'),
    keyMask: tf.tensor2d(keyMask, [B, Nk]),
    causalByPosition,
  };
}

/**
 * Clean textual keys: text tokens as keys, causal by real position. With `systemPromptLength` n > 0
 * the first n sequence positions of samples with an image are left out too (the reference's
 * `system_prompt_length`: it keeps the system prompt and user header out of image samples' text
 * keys); the default 0 keeps every text token. Call inside a tidy.
 */
export function buildTextualKeys(ctx: WingsKeyContext, systemPromptLength = 0): LearnerKeys {
  if (!Number.isInteger(systemPromptLength) || systemPromptLength < 0) {
    throw new Error(`Wings: systemPromptLength must be a non-negative integer, got ${String(systemPromptLength)}`);
  }
  if (systemPromptLength === 0) return { source: ctx.inputEmbeddings, positions: ctx.positions, keyMask: ctx.textMask, causalByPosition: true };
  const [B, L] = ctx.textMask.shape;
  const afterPrompt = tf.greaterEqual(tf.range(0, L, 1, 'int32'), systemPromptLength); // [L]: index ≥ n
  const noImage = tf.reshape(tf.equal(ctx.hasImage, 0), [B, 1]); // [B, 1]
  const keep = tf.logicalOr(tf.reshape(afterPrompt, [1, L]), noImage); // [B, L]
  const keyMask = tf.mul(ctx.textMask, tf.cast(keep, 'float32')) as tf.Tensor2D; // [B, L]
  return { source: ctx.inputEmbeddings, positions: ctx.positions, keyMask, causalByPosition: true };
}

/**
 * The reference's textual key lists (per sample, sequence indices) and their right-padding counts.
 * Image samples: `[systemPromptLength, b) ∪ [b+n, L)` around the first image span `[b, b+n)`;
 * samples without an image: `[0, L)`. Shorter lists repeat their last index.
 */
export function referenceTextKeyIndices(
  imageSpans: WingsKeyContext['imageSpans'],
  length: number,
  systemPromptLength: number,
): { indices: number[][]; padding: number[] } {
  const lists = imageSpans.map((spans) => {
    const out: number[] = [];
    if (spans.length === 0) {
      for (let i = 0; i < length; i++) out.push(i);
      return out;
    }
    const { start, length: n } = spans[0];
    for (let i = systemPromptLength; i < start; i++) out.push(i);
    for (let i = start + n; i < length; i++) out.push(i);
    return out;
  });
  const Lk = Math.max(...lists.map((l) => l.length));
  if (Lk === 0) throw new Error(`Wings: the reference text key lists are empty (systemPromptLength ${systemPromptLength}, length ${length})`);
  const padding = lists.map((l) => Lk - l.length);
  const indices = lists.map((l) => {
    const last = l.length ? l[l.length - 1] : 0;
    return [...l, ...new Array<number>(Lk - l.length).fill(last)];
  });
  return { indices, padding };
}

/** Reference-compat textual keys (`misalignedTextMask`). Call inside a tidy. */
export function buildReferenceTextualKeys(ctx: WingsKeyContext, systemPromptLength: number): LearnerKeys {
  const [B, L, H] = ctx.inputEmbeddings.shape;
  const { indices, padding } = referenceTextKeyIndices(ctx.imageSpans, L, systemPromptLength);
  const Lk = indices[0].length;
  const flatIndex = new Int32Array(B * Lk);
  const keyIndex = new Int32Array(B * Lk);
  const rowValid = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < Lk; j++) {
      flatIndex[b * Lk + j] = b * L + indices[b][j];
      keyIndex[b * Lk + j] = indices[b][j];
    }
    for (let t = 0; t < L; t++) rowValid[b * L + t] = t < L - padding[b] ? 1 : 0;
  }
  const flatEmbeddings = tf.reshape(ctx.inputEmbeddings, [B * L, H]); // [B·L, H]
  const source = tf.reshape(gatherTableRows(flatEmbeddings as tf.Tensor2D, flatIndex), [B, Lk, H]) as tf.Tensor3D; // [B, Lk, H]
  const causalByColumn = tf.lessEqual(tf.reshape(tf.range(0, Lk, 1, 'int32'), [1, 1, Lk]), tf.reshape(tf.range(0, L, 1, 'int32'), [1, L, 1])); // [1, L, Lk]: j ≤ t
  const columnValid = tf.notEqual(tf.reshape(tf.slice(ctx.attentionMask, [0, 0], [B, Lk]), [B, 1, Lk]), 0); // [B, 1, Lk]
  const rows = tf.notEqual(tf.tensor3d(rowValid, [B, L, 1]), 0); // [B, L, 1]
  const attendMask = tf.logicalAnd(tf.logicalAnd(causalByColumn, columnValid), rows) as tf.Tensor3D; // [B, L, Lk]
  return {
    source,
    positions: tf.tensor2d(keyIndex, [B, Lk], 'int32'),
    keyMask: tf.ones([B, Lk]) as tf.Tensor2D,
    causalByPosition: false,
    attendMask,
    fullyMaskedRows: 'uniform',
  };
}
