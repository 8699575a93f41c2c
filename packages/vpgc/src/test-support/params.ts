/** Helpers that move tensors between tf state dicts and the float64 reference. */
import * as tf from '@tensorflow/tfjs';
import { createRng, disposeStateDict, stateDict, type Module } from '@mllm/core';
import { f64, type F64, type ParamsF64 } from './float64-reference.js';

/** A module's parameters (reference names, PyTorch layout) as float64 arrays. */
export function paramsF64(module: Module, prefix = ''): ParamsF64 {
  const dict = stateDict(module, prefix);
  const out: ParamsF64 = new Map();
  for (const [name, value] of dict) out.set(name, f64(value.shape, value.dataSync()));
  disposeStateDict(dict);
  return out;
}

/** Seeded float32-representable values N(0, std) (Box–Muller), as float64. */
export function randomValues(seed: number, size: number, std = 1, mean = 0): Float64Array {
  const rng = createRng(seed);
  const out = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    out[i] = Math.fround(mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
  return out;
}

/** A random float64 dict with the given reference shapes (LayerNorm weights around 1). */
export function randomParams(shapes: Array<[string, number[]]>, seed: number, std = 0.3): ParamsF64 {
  const out: ParamsF64 = new Map();
  shapes.forEach(([name, shape], i) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const isNormWeight = /(LayerNorm|ln_vision)\.weight$/.test(name);
    out.set(name, f64(shape, randomValues(seed * 1000 + i, size, isNormWeight ? 0.1 : std, isNormWeight ? 1 : 0)));
  });
  return out;
}

/** float64 dict → tf state dict (float32). */
export function toTensors(params: ParamsF64): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, value] of params) out.set(name, tf.tensor(Float32Array.from(value.data), value.shape));
  return out;
}

export function tensorF64(tensor: tf.Tensor): F64 {
  return f64(tensor.shape, tensor.dataSync());
}

/** max |a − b| / max |b|. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`relativeError: lengths ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / (scale || 1);
}
