/**
 * Names of the TensorFlow.js backends @mllm knows how to start, and the parsing of a requested name.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A concrete backend: tfjs' own backend names (`tensorflow` is tfjs-node's native backend). */
export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

/** What a caller may ask for: a concrete backend, or `auto` (best available, see `initBackend`). */
export type BackendRequest = BackendName | 'auto';

/** Concrete backends in the order `auto` prefers them (fastest first). */
export const BACKEND_PREFERENCE: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

/** Every accepted request name. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'];

/** Environment variable read (in Node) by `initBackend()` when no name is given. */
export const BACKEND_ENV_VARIABLE = 'MLLM_BACKEND';

/** Whether `value` is one of the accepted request names. */
export function isBackendRequest(value: unknown): value is BackendRequest {
  return typeof value === 'string' && (BACKEND_REQUESTS as readonly string[]).includes(value);
}

/**
 * Validates a requested backend name (trimmed, case-insensitive).
 * @param value the name, e.g. from an argument or `MLLM_BACKEND`
 * @param source where it came from, for the error message (`name` or `MLLM_BACKEND`)
 * @throws Error naming the source, the accepted names and the actual value
 */
export function parseBackendRequest(value: unknown, source = 'name'): BackendRequest {
  const normalized = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (!isBackendRequest(normalized)) {
    throw new Error(
      `initBackend: unknown backend ${source} ${JSON.stringify(value)}; expected one of ${BACKEND_REQUESTS.join(', ')}`,
    );
  }
  return normalized;
}

/**
 * Whether `backend` (default: the active one) keeps tensors in host memory, where `dataSync` is a cheap
 * synchronous read: cpu and wasm. Small index-like tensors (masks, position tables) are then built in
 * JavaScript instead of through tfjs' slow broadcasting kernels; GPU backends keep the tensor path.
 */
export function isHostMemoryBackend(backend: string = tf.getBackend()): boolean {
  return backend === 'cpu' || backend === 'wasm';
}
