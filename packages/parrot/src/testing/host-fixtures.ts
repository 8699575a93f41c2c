/** Test-only: the shared tiny host with cls_patch vision (`@mllm/models/testing`), a seeded MoE for it and its image features. */
import * as tf from '@tensorflow/tfjs';
import { createRng, type VisionSelectFeature } from '@mllm/core';
import type { HostMLLM } from '@mllm/models';
import { tinyHost as sharedTinyHost } from '@mllm/models/testing';
import { ParrotMoE } from '../parrot-moe.js';
import { randomMatrix, randomWeights, weightsToStateDict } from './fixtures.js';

export const H = 16;
export const Nv = 5; // CLS + 4 patches
export const Dv = 12;

/** The shared seeded tiny host; Parrot's tests read CLS + patch features (`Nv` = 5). */
export function tinyHost(seed = 1, selectFeature: VisionSelectFeature = 'cls_patch'): HostMLLM {
  return sharedTinyHost(seed, {}, { selectFeature });
}

export function tinyMoE(): ParrotMoE {
  const moe = new ParrotMoE({ hiddenSize: H, intermediateSize: 24, numExperts: 3 });
  const dict = weightsToStateDict(randomWeights(7, H, 24, 3, 3));
  moe.loadStateDict(dict);
  tf.dispose([...dict.values()]);
  return moe;
}

/** Precomputed `[Nv, Dv]` image features for the two samples of `tinyTokenBatch`. */
export const FEATURES = (() => {
  const rng = createRng(3);
  return [randomMatrix(rng, Nv, Dv), randomMatrix(rng, Nv, Dv)];
})();
