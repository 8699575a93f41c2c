/**
 * Wraps a host multimodal model (`@mllm/models`' `HostMLLM`, or anything with the {@link HostModelLike}
 * parts of it) as an {@link EvalModel}, doing what Parrot's evaluation wrapper
 * does around the model:
 * - the prompt becomes `<image>\n` + prompt when the row has an image (then the host's chat template);
 * - images are padded to a square with the processor's mean colour, `floor(mean · 255) / 255`
 *   (LLaVA/Parrot `image_aspect_ratio = 'pad'`), then resized to the vision tower's input side.
 *   The reference resizes with PIL bicubic (CLIPImageProcessor); this uses bilinear interpolation
 *   with half-pixel centres, so pixels differ slightly from the reference preprocessing. (`@mllm/models/image`'s
 *   Pillow-exact `ImageProcessor` is built from a `preprocessor_config.json` — resize, crop, resample, mean and
 *   std — and normalises; a saved host has no such config: its vision config gives only the input side and the
 *   normalisation, which the host applies itself. Checkpoints in the authors' layouts are evaluated through
 *   `@mllm/pretrained`, whose loaders use that processor.)
 * - greedy generation, the first text of the output;
 * - option log-likelihoods via the host's `scoreOptions` (the option letter by default, as the
 *   instruction asks for the letter).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { OptionChoice } from './benchmark-reader.js';
import type { EvalModel } from './eval-model.js';
import type { HostMLLM } from '@mllm/models';

/** The parts of a host model the adapter uses ({@link HostMLLM} has them: checked below at compile time). */
export interface HostModelLike {
  generate(prompt: string, images: tf.Tensor4D | null, options?: { maxNewTokens?: number }): { texts: string[] };
  scoreOptions?(prompt: string, images: tf.Tensor4D | null, options: string[]): number[];
  readonly visionTower?: { readonly visionConfig?: { readonly imageSize?: number; readonly imageMean?: readonly number[] } };
  dispose?(): void;
}
/** Compile-time link to the host: fails to type-check if `HostMLLM` stops providing {@link HostModelLike}. */
type FitsHostModelLike<T extends HostModelLike> = T;
type _HostMLLMCheck = FitsHostModelLike<HostMLLM>;

/** What the log-likelihood fallback scores: the letter (`B`), the option text, or `B. text`. */
export type ScoreTarget = 'letter' | 'text' | 'letter-text';

/** Options of {@link adaptHostModel}. */
export interface HostAdapterOptions {
  /** Square input side (default: the host's `visionTower.visionConfig.imageSize`). */
  readonly imageSize?: number;
  /** Padding colour in [0, 1] (default: `floor(imageMean · 255) / 255` of the host, else CLIP's mean). */
  readonly padColor?: readonly [number, number, number];
  /** Pad to a square before resizing (default true, Parrot's `pad` aspect-ratio mode). */
  readonly padToSquare?: boolean;
  /** Maximum generated tokens (default 64; the reference allows 512 but answers are a letter). */
  readonly maxNewTokens?: number;
  /** Image placeholder put before the prompt (default `<image>`). */
  readonly imagePlaceholder?: string;
  /** See {@link ScoreTarget} (default `'letter'`). */
  readonly scoreTarget?: ScoreTarget;
  /** Name in reports. */
  readonly name?: string;
}

/** CLIP's image mean (OpenAI CLIP ViT-L/14-336 processor), the reference's padding colour source. */
export const CLIP_IMAGE_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];

/**
 * Pads `[H, W, 3]` to a square `[M, M, 3]` (M = max(H, W)) filled with `color`, the image centred
 * with the smaller offset `floor((M − side) / 2)` (PIL `paste` in LLaVA's `expand2square`).
 */
export function padToSquare(image: tf.Tensor3D, color: readonly [number, number, number]): tf.Tensor3D {
  return tf.tidy(() => {
    const [H, W] = image.shape;
    if (H === W) return image.clone();
    const M = Math.max(H, W);
    const top = Math.floor((M - H) / 2);
    const left = Math.floor((M - W) / 2);
    const shifted = tf.sub(image, tf.tensor1d([...color])); // [H, W, 3], zero where equal to the colour
    const padded = tf.pad(shifted, [[top, M - H - top], [left, M - W - left], [0, 0]]); // [M, M, 3]
    return tf.add(padded, tf.tensor1d([...color])) as tf.Tensor3D;
  });
}

/** `[H, W, 3]` in [0, 1] → `[1, S, S, 3]`: optional square padding, then bilinear resize (half-pixel centres). */
export function preprocessImage(
  image: tf.Tensor3D,
  size: number,
  options: { padColor: readonly [number, number, number]; padToSquare: boolean },
): tf.Tensor4D {
  if (image.rank !== 3 || image.shape[2] !== 3) {
    throw new TypeError(`preprocessImage: image must be [H, W, 3], got [${image.shape}]`);
  }
  if (!Number.isInteger(size) || size < 1) throw new TypeError(`preprocessImage: size must be a positive integer, got ${size}`);
  return tf.tidy(() => {
    const square = options.padToSquare ? padToSquare(image, options.padColor) : image; // [M, M, 3]
    const batched = tf.expandDims(square, 0) as tf.Tensor4D; // [1, M, M, 3]
    if (batched.shape[1] === size && batched.shape[2] === size) return batched.clone();
    return tf.image.resizeBilinear(batched, [size, size], false, true); // [1, S, S, 3]
  });
}

/** Wraps a host model as an {@link EvalModel}; see the module comment. */
export function adaptHostModel(host: HostMLLM | HostModelLike, options: HostAdapterOptions = {}): EvalModel {
  if (!host || typeof host.generate !== 'function') {
    throw new TypeError('adaptHostModel: host must have generate(prompt, images, options)');
  }
  const config = host.visionTower?.visionConfig;
  const imageSize = options.imageSize ?? config?.imageSize;
  const mean = config?.imageMean && config.imageMean.length === 3 ? config.imageMean : CLIP_IMAGE_MEAN;
  const padColor = options.padColor ?? (mean.map((m) => Math.floor(m * 255) / 255) as unknown as [number, number, number]);
  const placeholder = options.imagePlaceholder ?? '<image>';
  const maxNewTokens = options.maxNewTokens ?? 64;
  const target = options.scoreTarget ?? 'letter';
  const pad = options.padToSquare ?? true;

  const withImages = <T>(prompt: string, images: readonly tf.Tensor3D[], run: (text: string, pixels: tf.Tensor4D | null) => T): T => {
    if (images.length === 0) return run(prompt, null);
    if (imageSize === undefined) {
      throw new Error('adaptHostModel: the host has no visionTower.visionConfig.imageSize; pass options.imageSize');
    }
    const pixels = tf.tidy(() =>
      tf.concat(images.map((image) => preprocessImage(image, imageSize, { padColor, padToSquare: pad })), 0),
    ) as tf.Tensor4D; // [N, S, S, 3]
    try {
      return run(`${placeholder.repeat(images.length)}\n${prompt}`, pixels);
    } finally {
      pixels.dispose();
    }
  };

  const model: EvalModel = {
    name: options.name,
    generate(prompt, images) {
      return withImages(prompt, images, (text, pixels) => host.generate(text, pixels, { maxNewTokens }).texts[0] ?? '');
    },
    ...(typeof host.scoreOptions === 'function'
      ? {
          scoreOptions(prompt: string, images: readonly tf.Tensor3D[], choices: readonly OptionChoice[]) {
            const continuations = choices.map((choice) =>
              target === 'letter' ? choice.letter : target === 'text' ? choice.text : `${choice.letter}. ${choice.text}`,
            );
            return withImages(prompt, images, (text, pixels) => host.scoreOptions!(text, pixels, continuations));
          },
        }
      : {}),
    dispose() {
      host.dispose?.();
    },
  };
  return model;
}
