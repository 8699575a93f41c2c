/** Build the hook `ForwardContext` tensors from a splicing plan (call inside a tidy). */
import * as tf from '@tensorflow/tfjs-core';
import { type ForwardContext, imageTablesFromSpans } from '@mllm/core';
import type { SequencePlan } from './sequence.js';

/** Full-sequence context: every per-position field is `[B, L]` from the plan. */
export function contextFromPlan(
  plan: SequencePlan,
  inputEmbeddings: tf.Tensor3D,
  imageFeatures: tf.Tensor3D | null,
  visualTokens: tf.Tensor3D | null,
  isPrefill: boolean,
): ForwardContext {
  const shape: [number, number] = [plan.batchSize, plan.length];
  return {
    inputEmbeddings,
    positions: tf.tensor2d(plan.positions, shape, 'int32'),
    attentionMask: tf.tensor2d(plan.attentionMask, shape),
    textMask: tf.tensor2d(plan.textMask, shape),
    promptMask: tf.tensor2d(plan.promptMask, shape),
    systemMask: tf.tensor2d(plan.systemMask, shape),
    imageSpans: plan.imageSpans,
    imageToSample: plan.imageToSample,
    hasImage: tf.tensor1d(plan.hasImage, 'float32'),
    imageFeatures,
    visualTokens,
    lastPromptIndex: plan.lastPromptIndex,
    isPrefill,
    imageTables: imageTablesFromSpans(plan.imageSpans),
  };
}

/**
 * Decode-step context: the new tokens `inputEmbeddings [B, n, H]` at `positions [B, n]` are real
 * text (not prompt, not system); the per-sample and per-image fields describe the prompt (`plan`).
 */
export function decodeContext(
  plan: SequencePlan,
  imageFeatures: tf.Tensor3D | null,
  visualTokens: tf.Tensor3D | null,
  inputEmbeddings: tf.Tensor3D,
  positions: tf.Tensor2D,
): ForwardContext {
  const [B, n] = positions.shape;
  return {
    inputEmbeddings,
    positions,
    attentionMask: tf.ones([B, n]),
    textMask: tf.ones([B, n]),
    promptMask: tf.zeros([B, n]),
    systemMask: tf.zeros([B, n]),
    imageSpans: plan.imageSpans,
    imageToSample: plan.imageToSample,
    hasImage: tf.tensor1d(plan.hasImage, 'float32'),
    imageFeatures,
    visualTokens,
    lastPromptIndex: plan.lastPromptIndex,
    isPrefill: false,
    imageTables: imageTablesFromSpans(plan.imageSpans),
  };
}
