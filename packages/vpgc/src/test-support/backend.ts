/**
 * Test backend: the root vitest config runs every file once per backend project (cpu, wasm,
 * webgpu), setting `MLLM_TEST_BACKEND` and starting the backend in its setup file. Without that
 * setup (a bare vitest run), `MLLM_BACKEND` (default cpu) is started here.
 */
import { beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackendRequest } from '@mllm/core';

export function useTestBackend(): void {
  if (process.env.MLLM_TEST_BACKEND) return;
  beforeAll(async () => {
    const requested = parseBackendRequest(process.env.MLLM_BACKEND ?? 'cpu', 'MLLM_BACKEND');
    await initBackend(requested, { allowFallbackAdapter: true });
    if (tf.getBackend() !== requested) throw new Error(`test backend: asked for ${requested}, got ${tf.getBackend()}`);
  });
}

/** Tolerance factor for the active backend (webgpu's exp/erf are less exact than cpu/wasm). */
export function backendTolerance(base: number): number {
  return tf.getBackend() === 'webgpu' ? base * 10 : base;
}
