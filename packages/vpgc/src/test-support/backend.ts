/** Test backend selection: `MLLM_BACKEND` (cpu, wasm, webgpu), default cpu. */
import { beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mllm/core';

export function useTestBackend(): void {
  beforeAll(async () => {
    const requested = process.env.MLLM_BACKEND ?? 'cpu';
    await initBackend(requested, { allowFallbackAdapter: true });
    if (tf.getBackend() !== requested) throw new Error(`test backend: asked for ${requested}, got ${tf.getBackend()}`);
  });
}

/** Tolerance factor for the active backend (webgpu's exp/erf are less exact than cpu/wasm). */
export function backendTolerance(base: number): number {
  return tf.getBackend() === 'webgpu' ? base * 10 : base;
}
