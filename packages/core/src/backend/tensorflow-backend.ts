/**
 * The native TensorFlow backend of `@tensorflow/tfjs-node-gpu` (CUDA) or `@tensorflow/tfjs-node`
 * (CPU, libtensorflow). Node only. Importing either package registers the backend `tensorflow`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activateBackend } from './activate-backend.js';
import { importOptional, isNodeRuntime } from './runtime.js';
import type { StartResult } from './start-result.js';

/** Packages tried, best first. */
export const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/**
 * Whether a tfjs-node package can be imported (registers the `tensorflow` backend as a side effect).
 * @returns the package that loaded, or the reasons none did
 */
export async function loadTensorflowPackage(): Promise<{ ok: true; package: string } | { ok: false; why: string }> {
  if (!isNodeRuntime()) return { ok: false, why: 'tfjs-node needs Node.js' };
  const failures: string[] = [];
  for (const name of TENSORFLOW_PACKAGES) {
    const imported = await importOptional(name);
    if (imported.ok) return { ok: true, package: name };
    failures.push(imported.error);
  }
  if (tf.findBackendFactory('tensorflow') != null) return { ok: true, package: 'already registered' };
  return {
    ok: false,
    why: `tfjs-node is not importable: run \`npm install @tensorflow/tfjs-node@${tf.version_core}\` (or tfjs-node-gpu for CUDA) (${failures.join('; ')})`,
  };
}

/** Imports tfjs-node(-gpu) and starts its `tensorflow` backend. */
export async function startTensorflowBackend(verbose: boolean): Promise<StartResult> {
  const loaded = await loadTensorflowPackage();
  if (!loaded.ok) return { ok: false, why: loaded.why };
  const activated = await activateBackend('tensorflow', verbose);
  if (!activated.ok) return { ok: false, why: `${loaded.package} loaded but its backend failed: ${activated.why}` };
  return { ok: true, why: `native libtensorflow via ${loaded.package}` };
}
