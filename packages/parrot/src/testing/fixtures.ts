/** Test-only helpers: seeded data in float32-exact float64 arrays, and weight conversions. */
import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '@mllm/core';
import type { ParrotMoE } from '../parrot-moe.js';
import type { Float64Weights, Matrix } from './float64-moe.js';

export const DIMS = { D: 16, I: 24, E: 3, N: 5 } as const;

/** `rows × cols` values uniform in ±scale, rounded to float32 so tfjs sees the same numbers. */
export function randomMatrix(rng: () => number, rows: number, cols: number, scale = 1): Matrix {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => Math.fround((2 * rng() - 1) * scale)));
}

/** Seeded reference-layout weights; `gateScale` widens the router so routing is far from uniform. */
export function randomWeights(seed: number, D: number, I: number, E: number, gateScale = 1): Float64Weights {
  const rng = createRng(seed);
  return {
    gate: randomMatrix(rng, E, D, gateScale),
    experts: Array.from({ length: E }, () => ({
      gateProj: randomMatrix(rng, I, D, 1 / Math.sqrt(D)),
      upProj: randomMatrix(rng, I, D, 1 / Math.sqrt(D)),
      downProj: randomMatrix(rng, D, I, 1 / Math.sqrt(I)),
    })),
  };
}

/** Reference-named state dict (new tensors) of float64 weights. */
export function weightsToStateDict(w: Float64Weights, prefix = ''): Map<string, tf.Tensor> {
  const dict = new Map<string, tf.Tensor>();
  dict.set(`${prefix}gate.weight`, tf.tensor2d(w.gate));
  w.experts.forEach((e, i) => {
    dict.set(`${prefix}experts.${i}.gate_proj.weight`, tf.tensor2d(e.gateProj));
    dict.set(`${prefix}experts.${i}.up_proj.weight`, tf.tensor2d(e.upProj));
    dict.set(`${prefix}experts.${i}.down_proj.weight`, tf.tensor2d(e.downProj));
  });
  return dict;
}

/** The module's current weights as float64 arrays (reference layout). */
export function readWeights(moe: ParrotMoE): Float64Weights {
  const dict = moe.stateDict();
  const get = (k: string) => dict.get(k)!.arraySync() as Matrix;
  const w: Float64Weights = {
    gate: get('gate.weight'),
    experts: moe.experts.map((_, i) => ({
      gateProj: get(`experts.${i}.gate_proj.weight`),
      upProj: get(`experts.${i}.up_proj.weight`),
      downProj: get(`experts.${i}.down_proj.weight`),
    })),
  };
  for (const t of dict.values()) t.dispose();
  return w;
}

/** A padded batch: per-sample visual `[N, D]`, real text `[T_b, D]`, plus the padded layout. */
export interface Batch {
  visual: Matrix[]; // B × [N, D]
  texts: Matrix[]; // B × [T_b, D] real tokens
  /** B × [T] padded text (garbage at padding), and its mask. */
  paddedText: Matrix[];
  mask: number[][];
}

/**
 * Seeded batch. `layouts[b]` is sample b's mask over the padded length (1 = real); padding slots
 * hold large garbage values so any leak through the mask shows.
 */
export function randomBatch(seed: number, N: number, D: number, layouts: number[][], scale = 1): Batch {
  const rng = createRng(seed);
  const visual = layouts.map(() => randomMatrix(rng, N, D, scale));
  const paddedText = layouts.map((m) => m.map((keep) => randomMatrix(rng, 1, D, keep ? scale : 50)[0]));
  const texts = paddedText.map((rows, b) => rows.filter((_, t) => layouts[b][t] === 1));
  return { visual, texts, paddedText, mask: layouts.map((m) => [...m]) };
}

/** Tensors of a batch (caller disposes). */
export function batchTensors(batch: Batch): { visual: tf.Tensor3D; text: tf.Tensor3D; textMask: tf.Tensor2D } {
  return {
    visual: tf.tensor3d(batch.visual),
    text: tf.tensor3d(batch.paddedText),
    textMask: tf.tensor2d(batch.mask),
  };
}

/** Largest absolute value of nested numbers. */
export function maxAbs(values: unknown): number {
  if (typeof values === 'number') return Math.abs(values);
  return (values as unknown[]).reduce<number>((m, v) => Math.max(m, maxAbs(v)), 0);
}
