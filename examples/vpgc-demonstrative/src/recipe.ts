/**
 * The recipe, per seed:
 *
 *   stage 1: a tiny host MLLM whose visual prompt generator is a Q-Former VPG learns single-image
 *            captioning and region questions (vision tower, VPG and LLM all train): the "pretrained MLLM";
 *   stage 2: everything is frozen, VPG-C is attached (`attachVPGC`, zero-initialised, so a no-op at
 *            first) and trained alone on synthetic which-image-differs samples;
 *   scoring: the same frozen model with VPG-C attached, then with it removed, on held-out questions.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setSeed } from '@mllm/core';
import { HostMLLM, type Tokenizer } from '@mllm/models';
import { trainStage, type StepReport } from '@mllm-example/common';
import { QFormerVPG, attachVPGC, qformerAttentionReader, type AttachedVPGC } from '@mllm/vpgc';
import { CHAT_OPTIONS, SCENE, differenceGenerator, stage1Batch, syntheticBatch, type ChoiceQuestion } from './data.js';

export interface ExampleConfig {
  batchSize: number;
  stage1Steps: number;
  stage2Steps: number;
  stage1Lr: number;
  stage2Lr: number;
  /** Learned queries of the VPG = image tokens per image. */
  numQueryTokens: number;
  /** Held-out questions per evaluation set. */
  evalQuestions: number;
}

export const DEFAULT_CONFIG: ExampleConfig = {
  batchSize: 8,
  stage1Steps: 150,
  stage2Steps: 250,
  stage1Lr: 3e-3,
  stage2Lr: 5e-3,
  numQueryTokens: 8,
  evalQuestions: 48,
};

/** Vision tower: 16×16 images in 4×4 patches → CLS + 16 patch features of width 32 (Cheetah's Q-Former reads CLS and every patch). */
export const PATCH_GRID = SCENE.size / 4;

/** The host MLLM (2 layers, 64 wide) with a Q-Former VPG (2 layers, 32 wide) as its projector. */
export function buildHost(tokenizer: Tokenizer, config: ExampleConfig): { model: HostMLLM; vpg: QFormerVPG } {
  const vpg = new QFormerVPG({
    qformer: { hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, encoderWidth: 32 },
    numQueryTokens: config.numQueryTokens,
    llmHiddenSize: 64,
  });
  const model = new HostMLLM({
    config: {
      text: { vocabSize: tokenizer.vocabSize, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, maxLength: 320 },
      vision: { imageSize: SCENE.size, patchSize: 4, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64, selectFeature: 'cls_patch' },
    },
    projector: vpg,
    tokenizer,
  });
  return { model, vpg };
}

export type { StepReport };

/** Stage 1: the whole host learns single-image captioning / region QA. */
export async function runStage1(seed: number, tokenizer: Tokenizer, config: ExampleConfig, onStep: (r: StepReport) => void) {
  setSeed(seed);
  const built = buildHost(tokenizer, config);
  try {
    await trainStage({
      model: built.model, stageName: 'stage1-single-image', trainable: ['model', 'lm_head'], steps: config.stage1Steps, lr: config.stage1Lr, seed,
      makeBatch: (rng) => stage1Batch(rng, tokenizer, config.batchSize), onStep,
    });
  } catch (error) {
    built.model.dispose();
    throw error;
  }
  return built;
}

/** The frozen VPG's own cross-attention per patch (what picks the edited object). */
export function attentionReaderOf(model: HostMLLM, vpg: QFormerVPG) {
  return qformerAttentionReader(vpg, { featurize: (pixels) => model.encodeImages(pixels), patchGrid: PATCH_GRID, hasClsToken: true });
}

/** Stage 2: freeze the host, attach VPG-C and train it alone on which-differs samples. */
export async function runStage2(
  model: HostMLLM,
  vpg: QFormerVPG,
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<AttachedVPGC> {
  setSeed(seed * 1000 + 7);
  const attached = attachVPGC(model); // freezes the host structurally; only VPG-C's 5 tensors train
  const generator = differenceGenerator(seed * 7919 + 1, 'which-differs', attentionReaderOf(model, vpg), PATCH_GRID);
  attached.module.training = true;
  try {
    await trainStage({
      model, steps: config.stage2Steps, lr: config.stage2Lr, seed: seed + 1, // no `trainable`: attachVPGC froze the host
      makeBatch: (_rng, step) => syntheticBatch(tokenizer, generator.samples(step * config.batchSize, config.batchSize)),
      onStep,
    });
  } finally {
    attached.module.training = false;
  }
  return attached;
}

export interface ChoiceResult {
  /** Accuracy with options ranked by the mean per-token log-likelihood (primary). */
  accuracyMean: number;
  /** Accuracy with options ranked by the summed log-likelihood. */
  accuracySum: number;
  /** Mean over questions of the correct option's mean per-token log-likelihood (nats). */
  correctLogLik: number;
  /** How often each option position was picked (mean ranking): shows a constant answer at a glance. */
  pickedCounts: number[];
  questions: number;
}

/** Score each question's options by log-likelihood of the assistant continuation (one batched forward each). */
export function scoreChoices(model: HostMLLM, questions: ChoiceQuestion[], onQuestion?: () => void): ChoiceResult {
  let hitsMean = 0;
  let hitsSum = 0;
  let correctLogLik = 0;
  const pickedCounts: number[] = [];
  for (const q of questions) {
    const pixels = tf.tidy(() => tf.stack(q.images.map((p) => tf.tensor3d(p, [SCENE.size, SCENE.size, 3]))) as tf.Tensor4D);
    try {
      const scores = model.scoreOptionsDetailed(q.prompt, pixels, q.options, CHAT_OPTIONS);
      const picked = argmax(scores.map((s) => s.mean));
      pickedCounts[picked] = (pickedCounts[picked] ?? 0) + 1;
      if (picked === q.answerIndex) hitsMean++;
      if (argmax(scores.map((s) => s.sum)) === q.answerIndex) hitsSum++;
      correctLogLik += scores[q.answerIndex].mean;
    } finally {
      pixels.dispose();
    }
    onQuestion?.();
  }
  const n = questions.length;
  return { accuracyMean: hitsMean / n, accuracySum: hitsSum / n, correctLogLik: correctLogLik / n, pickedCounts: Array.from(pickedCounts, (c) => c ?? 0), questions: n };
}

function argmax(values: number[]): number {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}
