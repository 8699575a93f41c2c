/**
 * Checkpoint directories in the authors' layouts (plain LLaVA-style HF, Parrot, Wings, Cheetah) as
 * {@link EvalModel}s, through `@mllm/pretrained`'s `fromPretrained` (an optional peer: imported only
 * for a directory that is not a saved host model).
 *
 * The loaded model does what the authors' inference code does around a question: their conversation
 * format with the images where they put them, their image preprocessing, greedy decoding. Such models
 * have no option scoring, so an answer that names no unique option counts as wrong (the reference's
 * `exact_matching` mode).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { EvalModel } from './eval-model.js';

/** The parts of `@mllm/pretrained`'s `PretrainedMLLM` the adapter uses. */
export interface PretrainedModelLike {
  readonly kind: string;
  chat(question: string, images: readonly { height: number; width: number; data: Float32Array }[], options?: { maxNewTokens?: number }): Promise<{ text: string }>;
  dispose(): void;
}

/** `@mllm/pretrained`'s `fromPretrained`, or undefined when the package is not installed. */
export type PretrainedLoaderImporter = () => Promise<((dir: string, options?: { visionTowerDir?: string; tokenizerDir?: string }) => Promise<PretrainedModelLike>) | undefined>;

/** Imports `@mllm/pretrained` (an optional peer) and returns its `fromPretrained`. */
export const importPretrainedLoader: PretrainedLoaderImporter = async () => {
  try {
    const pretrained: typeof import('@mllm/pretrained') = await import('@mllm/pretrained');
    return pretrained.fromPretrained;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || /cannot find (package|module)|failed to (load|resolve)/i.test((error as Error).message)) return undefined;
    throw error;
  }
};

/** Options of {@link adaptPretrainedModel}. */
export interface PretrainedAdapterOptions {
  /** Maximum generated tokens (default 64; answers are a letter). */
  readonly maxNewTokens?: number;
  /** Name in reports. */
  readonly name?: string;
}

/**
 * Wraps a loaded `PretrainedMLLM` as an {@link EvalModel}: each `[H, W, 3]` image tensor in [0, 1]
 * becomes the RGB image `chat` takes (read once; the harness disposes the tensors), the prompt is the
 * question, the answer is the chat's text.
 */
export function adaptPretrainedModel(model: PretrainedModelLike, options: PretrainedAdapterOptions = {}): EvalModel {
  if (!model || typeof model.chat !== 'function') throw new TypeError('adaptPretrainedModel: model must have chat(question, images, options)');
  const maxNewTokens = options.maxNewTokens ?? 64;
  return {
    name: options.name,
    async generate(prompt: string, images: readonly tf.Tensor3D[]) {
      const rgb = await Promise.all(
        images.map(async (image, i) => {
          if (image.rank !== 3 || image.shape[2] !== 3) throw new TypeError(`adaptPretrainedModel: images[${i}] must be [H, W, 3], got [${image.shape}]`);
          const data = await image.data();
          return { height: image.shape[0], width: image.shape[1], data: data instanceof Float32Array ? data : Float32Array.from(data) };
        }),
      );
      return (await model.chat(prompt, rgb, { maxNewTokens })).text;
    },
    dispose() {
      model.dispose();
    },
  };
}
