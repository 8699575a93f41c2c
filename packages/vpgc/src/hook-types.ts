/**
 * The parts of the host MLLM hook contract (`@mllm/core` `model/hooks.ts`) that VPG-C uses. Narrowed
 * with `Pick` so the hook can also run on any host (or test loop) that provides just these fields;
 * a host `ForwardContext` / `HostMLLM` is assignable to them.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ForwardContext, ImageSpan, ImageTables, Module, ModuleHost } from '@mllm/core';

export type { ImageSpan };

/**
 * What VPG-C reads from the host's forward context: `imageSpans` (per sample; `imageIndex` indexes
 * `imageFeatures`), `imageToSample` `[numImages]`, `imageFeatures` `[numImages, Nv, Dv]` (vision
 * features fed to the VPG, before `ln_vision`), `lastPromptIndex` `[B]` (the guidance token) and
 * `isPrefill` (false on cached decode steps), and `imageTables` when present (the host always sets
 * them; a hand-built context may leave them out and VPG-C then reads `imageSpans`).
 */
export type VPGCForwardContext = Pick<ForwardContext, 'imageSpans' | 'imageToSample' | 'imageFeatures' | 'lastPromptIndex' | 'isPrefill'> & {
  imageTables?: ImageTables;
};

/** The hook object VPG-C hands to `addHooks` (a subset of the host's `DecoderHooks`). */
export interface VPGCDecoderHooks {
  beforeLayer(layerIndex: number, hidden: tf.Tensor3D, ctx: VPGCForwardContext): tf.Tensor3D | null;
  requiresFullSequence: boolean;
  /** VPG-C under its name in the host's state dict (`[['model', vpgc]]`: `model.query_tokens`, …). */
  namedModules(): Array<[string, Module]>;
}

/**
 * Anything VPG-C can attach to.
 * @deprecated Use `ModuleHost` from `@mllm/core` (what `attachVPGC` takes).
 */
export type VPGCHost = ModuleHost;
