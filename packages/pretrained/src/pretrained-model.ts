/**
 * What every whole model of this package offers, whichever paper it comes from: the CLI (`mllm run`)
 * and the eval harness drive a loaded checkpoint through this interface only. Each paper's loader
 * (`loadLlava…`, `loadParrot…`, `loadWings…`, `loadCheetah…`) returns one; the underlying model
 * (a `LlavaModel` with attached modules, a Cheetah model, …) stays reachable as `model` for users
 * who want logits, training or the attach verbs.
 */
import type { Module } from '@mllm/core';

/** Which authors' layout a checkpoint directory was loaded as. */
export type PretrainedKind = 'llava' | 'parrot' | 'wings' | 'cheetah';

/** An RGB image as float pixels in [0, 1], row-major `[H, W, 3]` (the eval harness' `PixelImage`). */
export interface RgbImage {
  readonly height: number;
  readonly width: number;
  /** `height · width · 3` values in [0, 1]. */
  readonly data: Float32Array;
}

export interface ChatOptions {
  /** Most tokens to generate (default 128). */
  maxNewTokens?: number;
  /**
   * Called after each answer token (stop and eos tokens excluded) with the count and the text so far (for a
   * progress line or streaming): `tokens` runs 1, 2, … up to the result's `tokens.length`.
   */
  onToken?: (progress: { tokens: number; text: string }) => void;
}

export interface ChatResult {
  /** The answer, decoded without special tokens. */
  text: string;
  /** The generated token ids (eos excluded). */
  tokens: number[];
  /** Prompt length in tokens after the image placeholders were expanded (the sequence the prefill runs). */
  promptTokens: number;
  /**
   * Wall time of the prefill, milliseconds: from the call until the first token is out (the images preprocessed
   * and encoded, the prompt run).
   */
  prefillMs: number;
  /**
   * Wall time of the decode steps after the prefill, milliseconds: from the first token to the last of
   * `tokens`, i.e. the `tokens.length − 1` steps that produced the others (the `mllm` command's decode
   * tokens/s is their ratio).
   */
  decodeMs: number;
}

/** A loaded checkpoint: the authors' prompt format, image preprocessing and greedy decoding. */
export interface PretrainedMLLM {
  readonly kind: PretrainedKind;
  /** The directory it was loaded from. */
  readonly directory: string;
  /** The model itself (its state dict uses the checkpoint's names). */
  readonly model: Module;
  /**
   * One user turn (with `images` placed where the authors' format puts them) → the assistant's
   * answer, greedy, formatted and preprocessed exactly as the authors' inference code does.
   */
  chat(question: string, images: readonly RgbImage[], options?: ChatOptions): Promise<ChatResult>;
  /** Dispose every tensor of the model. */
  dispose(): void;
}
