/**
 * @mllm/wings: Wings (arXiv 2406.03496) learners for a host MLLM — the LoRRA visual/textual
 * learners, the attention-driven router, their wiring after each decoder layer's attention, and
 * `attachWings` on `@mllm/core`'s attach contract (adapters saved and loaded by core's
 * `saveAdapter` / `loadAdapter`, in the reference checkpoint layout).
 *
 * Importing the package registers the `wings` module kind, so `loadAdapter` / `loadHostModel`
 * attach Wings from a saved record.
 */
import './core-peer.js';
import { registerModuleKind } from '@mllm/core';
import { WINGS_MODULE_KIND } from './attach.js';

export * from './low-rank-projection.js';
export * from './lorra.js';
export * from './router.js';
export * from './wings-layer.js';
export * from './learner-keys.js';
export * from './inject.js';
export * from './attach.js';
export * from './adapter-io.js';
export * from './load-checkpoint.js';

registerModuleKind(WINGS_MODULE_KIND);
