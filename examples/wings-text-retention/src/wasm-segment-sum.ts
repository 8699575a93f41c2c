/**
 * A JavaScript `UnsortedSegmentSum` kernel for the wasm backend, which has none:
 *
 *   out[s, …] = Σ_{m : segmentIds[m] = s} x[m, …]        x [M, …], segmentIds [M] → out [numSegments, …]
 *
 * tfjs' GatherV2 gradient calls it; @mllm/wings gathers the learners' keys with `tf.gather`, so
 * training a projector (or anything upstream of the keys) through the Wings learners needs it on
 * wasm. Registered only where missing. (Example-local workaround; core's `gatherRows` has a
 * backend-independent gradient that the Wings key builders could use instead.)
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
}

export function registerWasmSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as { numSegments: number }).numSegments;
      const wasm = backend as unknown as WasmBackendLike;
      if (x.dtype !== 'float32') throw new Error(`UnsortedSegmentSum (wasm, example-local): x must be float32, got ${x.dtype}`);
      const values = wasm.readSync(x.dataId);
      const ids = wasm.readSync(segmentIds.dataId);
      const M = ids.length;
      const inner = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1);
      const out = new Float32Array(numSegments * inner);
      for (let m = 0; m < M; m++) {
        const s = ids[m];
        if (s < 0 || s >= numSegments) continue; // tfjs semantics: out-of-range ids are dropped
        for (let j = 0; j < inner; j++) out[s * inner + j] += values[m * inner + j];
      }
      return wasm.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], 'float32', undefined, out);
    },
  });
}
