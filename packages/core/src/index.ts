/**
 * @mllm/core: backends, safetensors and state dicts, layers, host MLLM, tokenizer, trainer.
 * Only what is exported here is public.
 */
export * from './nn/random.js';
export * from './nn/initializers.js';
export * from './nn/module.js';
export * from './nn/linear.js';
export * from './ops/matmul.js';
export * from './io/state-dict.js';
export * from './ops/activations.js';
export * from './ops/softmax.js';
export * from './ops/rotary.js';
export * from './ops/attention.js';
export * from './nn/rms-norm.js';
export * from './nn/layer-norm.js';
export * from './nn/swiglu.js';
export * from './nn/projector.js';
export * from './nn/attention.js';
export * from './io/half-float.js';
export * from './io/strict-json.js';
export * from './io/safetensors.js';
export * from './io/safetensors-node.js';
export * from './io/sharded.js';
export * from './train/seeded-random.js';
export * from './train/lr-schedule.js';
export * from './train/clip-grad-norm.js';
export * from './train/parameter-selector.js';
export * from './train/parameter-groups.js';
export * from './train/adamw.js';
export * from './train/training-stage.js';
export * from './train/progress.js';
export * from './train/metrics-log.js';
export * from './train/trainer.js';
export * from './train/checkpoint.js';
export * from './backend/backend-names.js';
export { initBackend, describeBackendChoice, selfTestBackend } from './backend/init-backend.js';
export type { InitBackendOptions, BackendAttempt, BackendChoice } from './backend/init-backend.js';
export type { WasmPaths } from './backend/wasm-backend.js';
export type { WebGpuAdapterSummary } from './backend/webgpu-types.js';
export { SWIFTSHADER_ICD_PATH } from './backend/node-webgpu.js';
export { ensureGradients, gradientsRegistered } from './backend/gradients.js';
