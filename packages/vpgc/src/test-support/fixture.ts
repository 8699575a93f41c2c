/** A tiny VPG + VPG-C + batch used by the VPG-C tests (B = 2; 2 images in sample 0, 1 in sample 1). */
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict } from '@mllm/core';
import { QFormerVPG } from '../qformer-vpg.js';
import { VPGC } from '../vpgc.js';
import { loadVPGCStateDict, loadVPGStateDict } from '../state-dict-io.js';
import type { ImageSpan, VPGCForwardContext } from '../hook-types.js';
import type { ParamsF64 } from './float64-reference.js';
import { paramsF64, randomParams, randomValues, toTensors } from './params.js';

export const qformerShape = {
  hiddenSize: 8,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  intermediateSize: 16,
  encoderWidth: 6,
  crossAttentionFreq: 2,
  layerNormEps: 1e-12,
};
export const Nq = 4;
export const Nv = 5;
export const H = 12;
export const B = 2;
export const L = 16;
export const imageSpans: ImageSpan[][] = [
  [
    { imageIndex: 0, start: 2, length: Nq },
    { imageIndex: 1, start: 7, length: Nq },
  ],
  [{ imageIndex: 2, start: 4, length: Nq }],
];
export const imageToSample = [0, 0, 1];
export const imageStart = [2, 7, 4];
export const lastPromptIndex = [13, 12];

export function makeVpg(): QFormerVPG {
  return new QFormerVPG({ qformer: qformerShape, numQueryTokens: Nq, llmHiddenSize: H });
}

/** Random reference-layout values for every parameter of `module` (under `prefix`), loaded by `load`. */
export function randomizeVpg(vpg: QFormerVPG, seed: number): ParamsF64 {
  const shapes = [...paramsF64(vpg)].map(([name, value]) => [name, value.shape] as [string, number[]]);
  const params = randomParams(shapes, seed);
  const tensors = toTensors(params);
  loadVPGStateDict(vpg, tensors);
  disposeStateDict(tensors);
  return params;
}

export function randomizeVpgc(vpgc: VPGC, seed: number, std = 0.3): ParamsF64 {
  const shapes = [...paramsF64(vpgc, 'llama_model.model.')].map(([name, value]) => [name, value.shape] as [string, number[]]);
  const params = randomParams(shapes, seed, std);
  const tensors = toTensors(params);
  loadVPGCStateDict(vpgc, tensors);
  disposeStateDict(tensors);
  return params;
}

export interface Batch {
  features: Float64Array; // [3, Nv, Dv]
  hidden: Float64Array; // [B, L, H]
  featuresTensor: tf.Tensor3D;
  hiddenTensor: tf.Tensor3D;
  ctx: VPGCForwardContext;
  dispose(): void;
}

export function makeBatch(seed: number, isPrefill = true): Batch {
  const features = randomValues(seed, 3 * Nv * qformerShape.encoderWidth);
  const hidden = randomValues(seed + 1, B * L * H);
  const featuresTensor = tf.tensor3d(Float32Array.from(features), [3, Nv, qformerShape.encoderWidth]);
  const hiddenTensor = tf.tensor3d(Float32Array.from(hidden), [B, L, H]);
  return {
    features,
    hidden,
    featuresTensor,
    hiddenTensor,
    ctx: { imageSpans, imageToSample, imageFeatures: featuresTensor, lastPromptIndex, isPrefill },
    dispose: () => tf.dispose([featuresTensor, hiddenTensor]),
  };
}

/** Text embeddings with the VPG's image tokens spliced at the spans: `[B, L, H]`. */
export function splice(vpg: QFormerVPG, batch: Batch): tf.Tensor3D {
  return tf.tidy(() => {
    const visual = vpg.forward(batch.featuresTensor).dataSync(); // [3, Nq, H]
    const data = Float32Array.from(batch.hidden);
    imageSpans.forEach((spans, b) => {
      for (const span of spans) {
        for (let t = 0; t < Nq; t++) for (let e = 0; e < H; e++) {
          data[(b * L + span.start + t) * H + e] = visual[(span.imageIndex * Nq + t) * H + e];
        }
      }
    });
    return tf.tensor3d(data, [B, L, H]);
  });
}
