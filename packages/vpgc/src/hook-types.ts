/**
 * The parts of the host MLLM hook contract (`@mllm/core` `model/hooks.ts`) that VPG-C uses, written
 * structurally so this package type-checks against the host without importing its internals. A host
 * `ForwardContext` / `DecoderHooks` is assignable to these.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Module } from '@mllm/core';

/** Positions of one image's tokens in the spliced sequence. */
export interface ImageSpan {
  imageIndex: number;
  start: number;
  length: number;
}

/** What VPG-C reads from the host's forward context. */
export interface VPGCForwardContext {
  /** Per sample, in order; `imageIndex` indexes `imageFeatures`. */
  imageSpans: ImageSpan[][];
  /** `[numImages]` sample of each image. */
  imageToSample: number[];
  /** `[numImages, Nv, Dv]` vision-encoder features fed to the VPG (before `ln_vision`). */
  imageFeatures: tf.Tensor3D | null;
  /** `[B]` index of the last prompt token (the guidance token). */
  lastPromptIndex: number[];
  /** True for the full forward / generation prefill; false on cached decode steps. */
  isPrefill: boolean;
}

/** The hook object VPG-C hands to `addHooks` (a subset of the host's `DecoderHooks`). */
export interface VPGCDecoderHooks {
  beforeLayer(layerIndex: number, hidden: tf.Tensor3D, ctx: VPGCForwardContext): tf.Tensor3D | null;
  requiresFullSequence: boolean;
  modules(): Module[];
}

/** Anything VPG-C can attach to: the host MLLM. */
export interface VPGCHost {
  addHooks(hooks: VPGCDecoderHooks): { remove(): void };
}
