/**
 * @mllm/vpgc: BLIP-2 Q-Former VPG and VPG-C (Cheetah, ICLR 2024) for the host MLLM, plus a seeded
 * synthetic discriminative-training data generator.
 */
import './core-peer.js';
export * from './qformer-config.js';
export * from './qformer-attention.js';
export * from './qformer-layer.js';
export * from './qformer.js';
export * from './qformer-vpg.js';
export * from './hook-types.js';
export * from './vpgc.js';
export * from './state-dict-io.js';
export * from './adapter.js';
export * from './attach.js';
export * from './synthetic/index.js';
