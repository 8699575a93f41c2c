/**
 * Gradient registration. `@tensorflow/tfjs-core` alone registers no gradients: `tf.grad` of a
 * `matMul` then fails with "gradient function not found". Importing `@tensorflow/tfjs-layers`
 * (a peer dependency of @mllm/core, loaded by `Module`) registers all of them, in its Node bundle as
 * well as its ESM build. `@tensorflow/tfjs-core/dist/register_all_gradients` cannot be used from
 * Node directly: that file is ESM with extension-less relative imports inside a package Node
 * treats as CommonJS, so both `import` and `require` of it fail.
 */
import * as tf from '@tensorflow/tfjs-core';
import { importOptional } from './runtime.js';

/** Kernels whose gradients are checked as a sample of "all gradients registered". */
const SAMPLE_GRADIENT_KERNELS = ['BatchMatMul', 'Softmax', 'Exp', 'Sum'];

/** Whether tfjs has gradients registered (checks a sample of kernels). */
export function gradientsRegistered(): boolean {
  return SAMPLE_GRADIENT_KERNELS.every((kernel) => tf.getGradient(kernel) != null);
}

/**
 * Makes sure gradients are registered, importing `@tensorflow/tfjs-layers` (then `@tensorflow/tfjs`)
 * when they are not.
 * @returns how they are available, e.g. `already registered`
 * @throws when neither package can provide them
 */
export async function ensureGradients(): Promise<string> {
  if (gradientsRegistered()) return 'already registered';
  const failures: string[] = [];
  for (const specifier of ['@tensorflow/tfjs-layers', '@tensorflow/tfjs']) {
    const imported = await importOptional(specifier);
    if (gradientsRegistered()) return `registered by ${specifier}`;
    failures.push(`${specifier}: ${imported.ok ? 'loaded but registered no gradients' : imported.error}`);
  }
  throw new Error(`No tfjs gradients are registered and none could be loaded (${failures.join('; ')})`);
}
