/**
 * Backend selection for the CLI (an application, so it may pick one; the library never does).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Backends the CLI knows how to load, and the package that registers each. */
export const BACKEND_PACKAGES: Readonly<Record<string, string>> = Object.freeze({
  cpu: '@tensorflow/tfjs-backend-cpu',
  wasm: '@tensorflow/tfjs-backend-wasm',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
});

/** Names of the backends registered with tfjs so far. */
export function registeredBackends(): string[] {
  return Object.keys(tf.engine().registryFactory);
}

/**
 * Makes sure a backend is active. With a name: registers it (importing its package if needed) and
 * selects it. Without: keeps whatever the model (or the host) registered, and falls back to the
 * plain-JS cpu backend when nothing is registered. Returns the active backend name.
 */
export async function ensureBackend(name?: string): Promise<string> {
  const wanted = name ?? (registeredBackends().length > 0 ? undefined : 'cpu');
  if (wanted !== undefined) {
    if (!tf.findBackendFactory(wanted)) {
      const packageName = BACKEND_PACKAGES[wanted];
      if (packageName === undefined) {
        throw new Error(`backend: expected one of ${Object.keys(BACKEND_PACKAGES).join(', ')}, got ${JSON.stringify(wanted)}`);
      }
      try {
        await import(/* @vite-ignore */ packageName);
      } catch (error) {
        throw new Error(`backend ${wanted}: cannot import ${packageName} (${(error as Error).message}); install it`);
      }
    }
    if (!(await tf.setBackend(wanted))) throw new Error(`backend ${wanted}: failed to initialize`);
  }
  await tf.ready();
  return tf.getBackend();
}
