/**
 * Vitest setup file of the per-backend test projects (see the root `vitest.config.ts`): starts the
 * backend named by `MLLM_TEST_BACKEND` before each test file and fails the file loudly when the
 * active backend is not that one (no silent fallback to cpu). On webgpu it also requires a real
 * WebGPU device (in Node: Dawn, on a GPU-less machine through SwiftShader).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describeBackendChoice, initBackend } from '@mllm/core';
import { TEST_BACKEND_ENV_VARIABLE, testBackend } from '@mllm/core/testing';

const requested = process.env[TEST_BACKEND_ENV_VARIABLE];
if (requested === undefined || requested === '') {
  throw new Error(`vitest-setup: ${TEST_BACKEND_ENV_VARIABLE} is not set; run the suite through the root vitest.config.ts projects`);
}
const expected = testBackend();

/**
 * Dawn option for the webgpu project: do not zero-initialize workgroup memory. It halves the time
 * SwiftShader needs (vpgc's tests: 14 s instead of 21 s of CPU), and it cannot hide a bug: a shader
 * that relied on zeroed workgroup memory would read garbage and fail its test.
 */
const DAWN_OPTIONS = ['enable-dawn-features=disable_workgroup_init'];

let choice: Awaited<ReturnType<typeof initBackend>>;
try {
  choice = await initBackend(expected, { dawnOptions: DAWN_OPTIONS, fastCpuKernels: true }); // cpu: the kernels the examples use
} catch (error) {
  throw new Error(`vitest-setup: the ${expected} test project cannot start its backend: ${(error as Error).message}`);
}
const active = tf.getBackend();
if (active !== expected || choice.backend !== expected) {
  throw new Error(`vitest-setup: expected backend ${expected} but tfjs is on ${active}\n${describeBackendChoice(choice)}`);
}
if (expected === 'webgpu') {
  const device = (tf.backend() as unknown as { device?: unknown }).device;
  if (choice.webgpuAdapter === undefined || device == null) {
    throw new Error(`vitest-setup: webgpu is active but has no WebGPU device/adapter\n${describeBackendChoice(choice)}`);
  }
}
if (expected === 'wasm' && /-thread build (failed|could not be prepared)/.test(choice.reason)) {
  // Not a failure (one thread computes the same bits), but the wasm project is meant to run threaded.
  console.warn(`vitest-setup: the wasm project fell back to one XNNPACK thread: ${choice.reason}`);
}
