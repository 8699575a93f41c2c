/**
 * A zero-copy `Identity` kernel for the wasm backend.
 *
 * tfjs-wasm's Identity allocates a new buffer and copies the input into it. Identity is what
 * `tf.clone` runs, and tfjs clones every tensor it saves for a gradient (`saveTensorsForBackwardMode`),
 * so each training step copied its saved activations and weights once more (VPG-C hook step: ~37 ms of
 * Identity at one thread). This kernel does what tfjs-wasm's own `Reshape` does: it returns the same
 * data under a second reference (`backend.incRef`), which is safe because tfjs never writes into an
 * existing tensor's data (a Variable's `assign` gives it new data).
 */
import * as tf from '@tensorflow/tfjs-core';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

/** Replace the wasm backend's Identity with the zero-copy one (idempotent). Returns whether it is installed. */
export function installZeroCopyWasmIdentity(): boolean {
  const current = tf.getKernel('Identity', 'wasm');
  if (current && (current.kernelFunc as { zeroCopy?: boolean }).zeroCopy) return true;
  const backend = tf.findBackend('wasm') as unknown as Partial<RefCountingBackend> | null;
  if (!backend || typeof backend.incRef !== 'function') return false;
  const original = current?.kernelFunc;
  const kernelFunc = ((args: { inputs: tf.NamedTensorInfoMap; backend: RefCountingBackend }) => {
    const x = args.inputs.x!;
    if (x.dtype === 'string') {
      if (!original) throw new Error('Identity (wasm): string tensors need tfjs-wasm\'s own Identity, which is missing');
      return (original as unknown as (a: typeof args) => tf.TensorInfo)(args);
    }
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as tf.KernelFunc & { zeroCopy?: boolean };
  kernelFunc.zeroCopy = true;
  if (current) tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc });
  return true;
}
