/** Test-only: a tiny host MLLM (cls_patch vision), a seeded MoE for it and a two-sample batch. */
import * as tf from '@tensorflow/tfjs';
import { createRng, setSeed, type VisionSelectFeature } from '@mllm/core';
import { HostMLLM, IGNORE_INDEX, type MultimodalBatch } from '@mllm/models';
import { ParrotMoE } from '../parrot-moe.js';
import type { Matrix } from './float64-moe.js';
import { randomMatrix, randomWeights, weightsToStateDict } from './fixtures.js';

export const H = 16;
export const Nv = 5; // CLS + 4 patches
export const Dv = 12;

export function tinyHost(seed = 1, selectFeature: VisionSelectFeature = 'cls_patch'): HostMLLM {
  setSeed(seed);
  return new HostMLLM({
    config: {
      text: { vocabSize: 262, hiddenSize: H, numLayers: 2, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 256 },
      vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: Dv, numLayers: 1, numHeads: 2, intermediateSize: 16, selectFeature },
    },
  });
}

export function tinyMoE(): ParrotMoE {
  const moe = new ParrotMoE({ hiddenSize: H, intermediateSize: 24, numExperts: 3 });
  const dict = weightsToStateDict(randomWeights(7, H, 24, 3, 3));
  moe.loadStateDict(dict);
  tf.dispose([...dict.values()]);
  return moe;
}

/** Sample 0: prompt, image, prompt, two supervised answer tokens; sample 1: text, image, text, right padding. */
export function batchRows(model: HostMLLM): { ids: number[][]; labels: number[][] } {
  const img = model.tokenizer.imageId;
  const pad = model.tokenizer.padId;
  const ids = [
    [72, 105, img, 120, 121, 122, 123],
    [65, img, 67, 68, 69, pad, pad],
  ];
  const labels = [
    [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 122, 123],
    ids[1].map(() => IGNORE_INDEX),
  ];
  return { ids, labels };
}

export function makeBatch(model: HostMLLM, features: Matrix[]): MultimodalBatch {
  const { ids, labels } = batchRows(model);
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(ids.map((row) => row.map((id) => (id === model.tokenizer.padId ? 0 : 1))), undefined, 'int32'),
    labels: tf.tensor2d(labels, undefined, 'int32'),
    imageFeatures: tf.tensor3d(features),
  };
}

export function disposeBatch(batch: MultimodalBatch): void {
  tf.dispose([batch.inputIds, batch.attentionMask!, batch.labels!, batch.imageFeatures!]);
}

export function logitsOf(model: HostMLLM, batch: MultimodalBatch): number[][][] {
  const out = model.forward(batch);
  const values = out.logits.arraySync();
  tf.dispose([out.logits, out.attentionMask]);
  out.labels?.dispose();
  return values;
}

export const FEATURES = (() => {
  const rng = createRng(3);
  return [randomMatrix(rng, Nv, Dv), randomMatrix(rng, Nv, Dv)];
})();
