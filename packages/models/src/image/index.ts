/**
 * Images for the reference models: the pure-JS codec (PNG / JPEG → float RGB). Also published alone as
 * `@mllm/models/image`, which imports only `@tensorflow/tfjs-core` and the codec libraries.
 */
export * from './codec.js';
