/**
 * Direct access to tensor memory for kernels written in JavaScript on the host-memory backends:
 * `cpu` (each tensor's values are a typed array in the backend's data map) and `wasm` (views into the
 * module's heap). Used by the fused kernels of `@mllm/core` (`rotary-kernel.ts`, `host-softmax.ts`,
 * `host-transpose.ts`, `host-layer-norm.ts`, `stack.ts`); they register only where these accessors find
 * what they need. JavaScript over the wasm heap is not faster than tfjs-wasm's own kernels in general
 * (a LayerNorm measured 2.5× slower), so on wasm it is used only where those kernels are pathological.
 */
import * as tf from '@tensorflow/tfjs-core';

interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
}

/** Whether the registered backend `name` exposes its tensors' memory the way these helpers read it. */
export function hostDataAccessible(name: string): boolean {
  const backend = tf.findBackend(name) as unknown as Partial<WasmBackendLike & CpuBackendLike> | null;
  if (!backend) return false;
  if (name === 'wasm') return typeof backend.makeOutput === 'function' && typeof backend.typedArrayFromHeap === 'function';
  if (name === 'cpu') return typeof backend.makeTensorInfo === 'function' && typeof backend.data?.get === 'function';
  return false;
}

/**
 * Runs `fill(out, read)` for a new float32 output of `shape` on the kernel's backend: `read(t)` gives
 * an input's values (a heap view on wasm: valid only during the call), `out` the output's memory.
 */
export function withFloat32Output(
  backend: unknown,
  shape: number[],
  fill: (out: Float32Array, read: (t: tf.TensorInfo) => tf.backend_util.TypedArray) => void,
): tf.TensorInfo {
  const wasm = backend as Partial<WasmBackendLike>;
  if (typeof wasm.typedArrayFromHeap === 'function' && typeof wasm.makeOutput === 'function') {
    const output = wasm.makeOutput(shape, 'float32'); // first: it may grow the heap, which detaches older views
    const read = (t: tf.TensorInfo) => wasm.typedArrayFromHeap!(t);
    fill(read(output) as Float32Array, read);
    return output;
  }
  const cpu = backend as CpuBackendLike;
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(out, (t) => cpu.data.get(t.dataId)!.values as tf.backend_util.TypedArray);
  return cpu.makeTensorInfo(shape, 'float32', out);
}

/**
 * Registers each kernel (for its backend) and each gradient that tfjs does not have yet; the kernels of
 * `@mllm/core` call it from their `…Available()` check, so registration happens on first use on each backend.
 */
export function registerKernelsOnce(kernels: readonly tf.KernelConfig[], gradients: readonly tf.GradConfig[] = []): void {
  for (const kernel of kernels) if (tf.getKernel(kernel.kernelName, kernel.backendName) === undefined) tf.registerKernel(kernel);
  for (const gradient of gradients) if (tf.getGradient(gradient.kernelName) === undefined) tf.registerGradient(gradient);
}
