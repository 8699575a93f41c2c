/**
 * A wasm-only kernel for grouped products `[G, M, K] · [G, K, N] → [G, M, N]` that reaches XNNPACK.
 *
 * Why: tfjs-wasm 4.22's BatchMatMul hands only a batch of one (non-transposed) to XNNPACK; for G > 1
 * it runs a naive loop (0.6–3 GFLOP/s on this machine). Splitting the operands into G tensors costs
 * more than it saves, because the wasm Slice/Unpack kernels copy the WHOLE input out of the heap for
 * every piece (O(G²) bytes). This kernel instead registers, for each group, three temporary tensor
 * ids with the wasm module that point INTO the operands' and the output's heap memory (no copy), and
 * calls the module's own BatchMatMul on them with batch 1, i.e. XNNPACK's fully-connected path.
 * The temporary ids are unregistered right after each call (the module does not own that memory,
 * so nothing is freed). Measured numbers: docs/performance.md.
 *
 * It relies on internals of `@tensorflow/tfjs-backend-wasm` 4.x (`dataIdMap[...].memoryOffset`,
 * `wasm.tfjs.registerTensor/disposeData`, the exported `BatchMatMul`). {@link wasmGroupedMatMulAvailable}
 * checks that they exist; callers fall back to `tf.matMul` otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { transposeLastTwo } from '../../ops/transpose.js';
import { registerKernelsOnce } from '../host-tensor-data.js';

/** Kernel name registered for the `wasm` backend. */
export const WASM_GROUPED_MATMUL = 'MllmGroupedMatMul';

interface WasmTensorData {
  memoryOffset: number;
  dtype: string;
}
type BatchMatMulFn = (
  aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number,
) => void;
interface WasmBackendInternals {
  dataIdMap: { get(dataId: object): WasmTensorData | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: string): tf.TensorInfo;
  wasm: {
    cwrap(name: string, returnType: null, argTypes: string[]): BatchMatMulFn;
    tfjs: { registerTensor(id: number, size: number, memoryOffset: number): void; disposeData(id: number): void };
  };
}

const BYTES_PER_FLOAT = 4;
const batchMatMulByBackend = new WeakMap<object, BatchMatMulFn>();

function internals(backend: unknown): WasmBackendInternals | undefined {
  const b = backend as Partial<WasmBackendInternals> | undefined;
  if (!b || typeof b.makeOutput !== 'function' || !b.dataIdMap || typeof b.dataIdNextNumber !== 'number') return undefined;
  const tfjs = b.wasm?.tfjs;
  if (!tfjs || typeof tfjs.registerTensor !== 'function' || typeof tfjs.disposeData !== 'function') return undefined;
  if (typeof b.wasm?.cwrap !== 'function') return undefined;
  return b as WasmBackendInternals;
}

function wasmBatchMatMul(backend: WasmBackendInternals): BatchMatMulFn {
  let fn = batchMatMulByBackend.get(backend);
  if (!fn) {
    fn = backend.wasm.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    batchMatMulByBackend.set(backend, fn);
  }
  return fn;
}

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);

/** Whether `backend` exposes the wasm internals the kernel needs. */
export function wasmKernelUsable(backend: unknown): boolean {
  return internals(backend) !== undefined;
}

/**
 * The kernel body: `[G, M, K]·[G, K, N]`, or `[M, K]·[K, N]` as one group (then no packed copy of the
 * right operand outlives the call). Operates on TensorInfos; exported for core's 2-D matMul kernel.
 */
export function groupedMatMulKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = internals(args.backend)!;
  const a = args.inputs.a!;
  const b = args.inputs.b!;
  const flat = a.shape.length === 2;
  const [G, M, K] = (flat ? [1, ...a.shape] : a.shape) as [number, number, number];
  const N = b.shape[b.shape.length - 1] as number;
  const out = backend.makeOutput(flat ? [M, N] : [G, M, N], 'float32'); // allocate first: offsets below stay valid after heap growth
  const aOffset = backend.dataIdMap.get(a.dataId)!.memoryOffset;
  const bOffset = backend.dataIdMap.get(b.dataId)!.memoryOffset;
  const outOffset = backend.dataIdMap.get(out.dataId)!.memoryOffset;
  const aShape = shapeBytes([1, M, K]);
  const bShape = shapeBytes([1, K, N]);
  const matMul = wasmBatchMatMul(backend);
  const register = backend.wasm.tfjs.registerTensor;
  const unregister = backend.wasm.tfjs.disposeData;
  for (let g = 0; g < G; g++) {
    const aId = backend.dataIdNextNumber++;
    const bId = backend.dataIdNextNumber++;
    const outId = backend.dataIdNextNumber++;
    register(aId, M * K, aOffset + g * M * K * BYTES_PER_FLOAT); // view of a[g]   [M, K]
    register(bId, K * N, bOffset + g * K * N * BYTES_PER_FLOAT); // view of b[g]   [K, N]
    register(outId, M * N, outOffset + g * M * N * BYTES_PER_FLOAT); // view of out[g] [M, N]
    try {
      matMul(aId, aShape, 3, bId, bShape, 3, false, false, outId);
    } finally {
      unregister(aId);
      unregister(bId);
      unregister(outId);
    }
  }
  return out;
}

const KERNEL: tf.KernelConfig = { kernelName: WASM_GROUPED_MATMUL, backendName: 'wasm', kernelFunc: groupedMatMulKernel as unknown as tf.KernelFunc };
const GRADIENT: tf.GradConfig = {
  kernelName: WASM_GROUPED_MATMUL,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved as [tf.Tensor3D, tf.Tensor3D];
    const dy3 = dy as tf.Tensor3D;
    return {
      a: () => runWasmGroupedMatMul(dy3, transposeLastTwo(b)), // [G, M, N]·[G, N, K]
      b: () => runWasmGroupedMatMul(transposeLastTwo(a), dy3), // [G, K, M]·[G, M, N]
    };
  },
};

/** Registers the kernel (and its gradient) once; returns whether the active backend can run it. */
export function wasmGroupedMatMulAvailable(): boolean {
  if (tf.getBackend() !== 'wasm' || internals(tf.backend()) === undefined) return false;
  registerKernelsOnce([KERNEL], [GRADIENT]);
  return true;
}

/**
 * `[G, M, K] · [G, K, N] → [G, M, N]` on wasm through {@link WASM_GROUPED_MATMUL}; float32 only.
 * Call only when {@link wasmGroupedMatMulAvailable} returned true.
 */
export function runWasmGroupedMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return tf.engine().runKernel(WASM_GROUPED_MATMUL, { a, b } as unknown as tf.NamedTensorMap, {}) as tf.Tensor3D;
}
