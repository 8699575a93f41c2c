/**
 * @mllm/wings: Wings (arXiv 2406.03496) learners for a host MLLM — the LoRRA visual/textual
 * learners, the attention-driven router, their wiring after each decoder layer's attention, and
 * adapter-style injection/save/load in the reference checkpoint layout.
 */
import './core-peer.js';
export * from './low-rank-projection.js';
export * from './lorra.js';
export * from './router.js';
export * from './wings-layer.js';
export * from './learner-keys.js';
export * from './inject.js';
export * from './adapter-io.js';
export * from './load-checkpoint.js';
