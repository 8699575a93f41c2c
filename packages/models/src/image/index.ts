/**
 * Images for the reference models: the pure-JS codec (PNG / JPEG → float RGB), Pillow's resampling on
 * 8-bit pixels, and the references' preprocessing (CLIP / SigLIP image processors, LLaVA's pad to square,
 * BLIP-2's eval transform). Also published alone as `@mllm/models/image`, which imports only
 * `@tensorflow/tfjs-core` and the codec libraries (`loadImageProcessor`, which reads files through
 * `@mllm/core`, is exported from `@mllm/models` only).
 */
export * from './codec.js';
export * from './resize.js';
export * from './processors.js';
