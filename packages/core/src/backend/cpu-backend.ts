/**
 * The plain-JavaScript `cpu` backend (`@tensorflow/tfjs-backend-cpu`, also bundled by
 * `@tensorflow/tfjs`). Always works when installed; the slowest choice.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activateBackend } from './activate-backend.js';
import { importOptional } from './runtime.js';
import { notInstalled, type StartResult } from './start-result.js';
import { installFastCpuBroadcast } from '../kernels/cpu/cpu-broadcast-binary.js';

/** Registers (by importing the package when needed) and starts the cpu backend; `fastKernels`: see `InitBackendOptions.fastCpuKernels`. */
export async function startCpuBackend(verbose: boolean, fastKernels = false): Promise<StartResult> {
  if (tf.findBackendFactory('cpu') == null) {
    const imported = await importOptional('@tensorflow/tfjs-backend-cpu');
    if (!imported.ok) {
      return { ok: false, why: notInstalled('@tensorflow/tfjs-backend-cpu', imported.error, tf.version_core) };
    }
  }
  const activated = await activateBackend('cpu', verbose);
  if (!activated.ok) return { ok: false, why: activated.why };
  if (!verbose) silenceCpuNodeHint();
  // float32 broadcasting Add/Sub/Mul/Div without per-element index math (bitwise same values); opt-in,
  // since tfjs' kernel registry is shared with every other tfjs user in the process.
  if (fastKernels) installFastCpuBroadcast();
  return { ok: true, why: `plain JavaScript kernels, always available${fastKernels ? ' (fast broadcasting binary kernels installed)' : ''}` };
}

/**
 * The cpu backend prints a one-time "install tfjs-node" hint on its first tensor in Node.
 * `initBackend` chose cpu deliberately and reports why, so that hint is marked as shown.
 */
function silenceCpuNodeHint(): void {
  const backend = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (backend && typeof backend.firstUse === 'boolean') backend.firstUse = false;
}
