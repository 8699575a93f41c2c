/**
 * @mllm/core: the contract and the tensor foundation — backends and their kernels, safetensors,
 * checkpoints and state dicts under PyTorch names, `Module` and layers, ops, the seeded RNG, and the
 * hook contract modules attach through. The host models and tokenizers are in `@mllm/models`, the
 * trainer in `@mllm/train`. Only what is exported here is public.
 */
export * from './validate.js';
export { CORE_VERSION, loadedCoreCopies, requireCoreVersion, satisfiesCaret, type LoadedCore, type CoreVersionCheck } from './package-identity.js';
export * from './nn/random.js';
export * from './nn/initializers.js';
export * from './nn/module.js';
export * from './nn/linear.js';
export * from './ops/matmul.js';
export * from './ops/transpose.js';
export * from './ops/stack.js';
export * from './io/state-dict.js';
export * from './ops/activations.js';
export * from './ops/swiglu.js';
export * from './ops/softmax.js';
export * from './ops/rotary.js';
export * from './ops/attention.js';
export * from './nn/rms-norm.js';
export * from './nn/layer-norm.js';
export * from './nn/swiglu.js';
export * from './nn/projector.js';
export * from './nn/attention.js';
export * from './backend/backend-names.js';
export { initBackend, describeBackendChoice, selfTestBackend, WASM_THREADS_ENV_VARIABLE } from './backend/init-backend.js';
export { wasmBackendThreads, type WasmThreads } from './backend/wasm-backend.js';
export { DEFAULT_THREADED_START_TIMEOUT_MS, MAX_WASM_THREADS, THREADED_START_TIMEOUT_ENV_VARIABLE } from './backend/wasm-threads.js';
export type { InitBackendOptions, BackendAttempt, BackendChoice } from './backend/init-backend.js';
export type { WasmPaths } from './backend/wasm-backend.js';
export type { WebGpuAdapterSummary } from './backend/webgpu-types.js';
export { SWIFTSHADER_ICD_PATH } from './backend/node-webgpu.js';
export { ensureGradients, gradientsRegistered } from './backend/gradients.js';
export { uninstallFastCpuBroadcast } from './kernels/cpu/cpu-broadcast-binary.js';
export * from './nn/seeded-random.js';
export * from './io/half-float.js';
export * from './io/strict-json.js';
export * from './io/safetensors.js';
export * from './io/safetensors-node.js';
export * from './io/sharded.js';
export * from './io/zip.js';
export * from './io/pickle.js';
export * from './io/torch-checkpoint.js';
/** @internal Node built-ins for the other @mllm packages (file I/O that stays out of browser bundles). */
export { nodeFilePromises, nodeFileSync, nodeCheckpointBuiltins } from './io/node-builtins.js';
/** @internal fsync of a directory after a rename, for the other @mllm packages' durable writes. */
export { syncDirectory } from './io/sync-directory.js';
export * from './hooks/hooks.js';
export * from './adapter/index.js';
export * from './ops/gather-rows.js';
