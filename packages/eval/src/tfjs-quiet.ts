/**
 * Keeps tfjs's one-time Node.js hint out of the CLI's output. Internal to the CLI (not exported
 * from the package): a library must not change how tfjs logs in someone else's process.
 *
 * `@tensorflow/tfjs-backend-cpu` prints "Hi, looks like you are running TensorFlow.js in Node.js. To
 * speed things up dramatically, install our node backend …" on the first tensor it stores, once per
 * process. The CLI chose the cpu backend deliberately (tfjs-node is not a supported backend here),
 * so the hint is only noise around the progress line. `@mllm/core`'s `initBackend` silences it the
 * same way; this package cannot import core (an optional peer), hence the small copy.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Marks the cpu backend's hint as shown, if that backend has been created. */
export function markCpuHintShown(): void {
  // `findBackend` only returns an instance already created (by `setBackend` / `ready`); the flag is
  // the backend's own "first use" switch, read once before the hint.
  const backend = tf.engine().registry.cpu as unknown as { firstUse?: boolean } | undefined;
  if (backend && typeof backend.firstUse === 'boolean') backend.firstUse = false;
}

/**
 * Runs `work` (loading a model, which may register a backend and store weights before the CLI gets
 * to choose one) with tfjs's own warnings off — tfjs prints them, the hint included, only when its
 * `PROD` flag is false — then restores the flag. Once a tensor was stored the hint never comes back.
 */
export async function withoutTfjsHints<T>(work: () => Promise<T>): Promise<T> {
  const environment = tf.env();
  const previous = environment.getBool('PROD');
  environment.set('PROD', true);
  try {
    return await work();
  } finally {
    environment.set('PROD', previous);
  }
}
