/**
 * Which backend the current test run uses, and per-backend numeric tolerances.
 *
 * The root vitest config runs every test file once per backend project (`cpu`, `wasm`, `webgpu`,
 * and `tensorflow` where tfjs-node is installed); each project sets `MLLM_TEST_BACKEND` and its
 * setup file starts that backend with `initBackend`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseBackendRequest, type BackendName } from '../backend/backend-names.js';

/** Environment variable naming the current test project's backend. */
export const TEST_BACKEND_ENV_VARIABLE = 'MLLM_TEST_BACKEND';

/**
 * The backend the current test project runs on: `MLLM_TEST_BACKEND`, else tfjs' active backend.
 * @throws when neither names a backend @mllm knows
 */
export function testBackend(): BackendName {
  const fromEnvironment = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[
    TEST_BACKEND_ENV_VARIABLE
  ];
  const name = fromEnvironment !== undefined && fromEnvironment !== '' ? fromEnvironment : tf.getBackend();
  const parsed = parseBackendRequest(name, TEST_BACKEND_ENV_VARIABLE);
  if (parsed === 'auto') throw new Error(`${TEST_BACKEND_ENV_VARIABLE} must name a concrete backend, got auto`);
  return parsed;
}

/**
 * Whether to skip a test on the current backend, for `it.skipIf(...)` / `describe.skipIf(...)`.
 * The default is that every test runs on every backend; use this only for a stated reason
 * (e.g. a test too slow on software WebGPU).
 * @param backends the backends to skip on
 * @param reason why (required, so skips stay justified in the source)
 */
export function skipOnBackend(backends: readonly BackendName[], reason: string): boolean {
  if (reason.trim().length === 0) throw new Error('skipOnBackend: reason must be a non-empty string');
  return backends.includes(testBackend());
}

/** Absolute and relative tolerance: `|actual − expected| ≤ atol + rtol·|expected|`. */
export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Default tolerances for comparing float32 tfjs results with float64 references.
 * cpu and tensorflow compute in float32 in a fixed order; wasm (XNNPACK) reorders and fuses
 * multiply-adds; WebGPU accumulates in a different order with its own transcendental functions.
 * Measured here (values in [-1, 1], [16,64]·[64,24] matMul): max |error| 6e-7 on cpu, 1.6e-6 on
 * wasm and webgpu; tanh/exp relative error ~1e-7 on cpu/wasm, up to 2.4e-6 on webgpu (SwiftShader).
 */
export const BACKEND_TOLERANCES: Readonly<Record<BackendName, Tolerance>> = {
  cpu: { rtol: 1e-5, atol: 1e-5 },
  tensorflow: { rtol: 1e-5, atol: 1e-5 },
  wasm: { rtol: 1e-5, atol: 1e-5 },
  webgpu: { rtol: 2e-5, atol: 2e-5 },
};

/** The default tolerance of `backend` (the current test backend when omitted). */
export function backendTolerance(backend: BackendName = testBackend()): Tolerance {
  return BACKEND_TOLERANCES[backend];
}
