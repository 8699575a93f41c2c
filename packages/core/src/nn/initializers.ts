import * as tf from '@tensorflow/tfjs-core';
import { nextSeed } from './random.js';

/** A function that makes the initial value of a parameter of the given (internal) shape. */
export type InitFn = (shape: number[]) => tf.Tensor;

/** U(-bound, bound), seeded from the global stream: PyTorch's Linear default is bound = 1/√fan_in. */
export function uniformInit(bound: number, seed?: number): InitFn {
  return (shape) => tf.randomUniform(shape, -bound, bound, 'float32', seed ?? nextSeed());
}

/** N(0, std²), seeded (truncated at 2σ like BERT/BLIP-2's `trunc_normal_` when `truncated`). */
export function normalInit(std: number, truncated = false, seed?: number): InitFn {
  return (shape) =>
    truncated
      ? tf.truncatedNormal(shape, 0, std, 'float32', seed ?? nextSeed())
      : tf.randomNormal(shape, 0, std, 'float32', seed ?? nextSeed());
}

export const zerosInit: InitFn = (shape) => tf.zeros(shape);
export const onesInit: InitFn = (shape) => tf.ones(shape);
/** Constant fill. */
export function constantInit(value: number): InitFn {
  return (shape) => tf.fill(shape, value);
}
