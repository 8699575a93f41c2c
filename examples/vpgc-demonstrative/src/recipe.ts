/**
 * The recipe, per seed and number of VPG queries N:
 *
 *   stage 1: a tiny host MLLM whose visual prompt generator is a Q-Former VPG with N learned queries
 *            (= N image tokens per image: the visual-prompt bottleneck) learns region questions and
 *            captions of busy scenes, questions about one of several images and text-only change
 *            sentences (vision tower, VPG and LLM all train): the "pretrained MLLM", then frozen;
 *   stage 2, experiment A (region questions, the instruction data), one variant at a time from the
 *            same frozen stage-1 model, each with the same steps, data and learning rate:
 *              frozen        no training (the MLLM without VPG-C);
 *              vpgc          VPG-C attached (`attachVPGC`, zero-initialised) and trained alone;
 *              vpgc-noguide  ablation: VPG-C with its guidance removed — `qformer_proj` written to 0
 *                            and frozen, so the re-query uses VPG-C's learned but FIXED queries (same
 *                            structure, no instruction-specific re-query);
 *              tuned-vpg     parameter-matched control: the VPG's own fixed-query path tuned instead —
 *                            its queries, `llama_proj` and the Q-Former's last output FFN
 *                            (`layer.1.output_query.dense`): 32·N + 2112 + 2080 = VPG-C's 32·N + 2080 + 2112;
 *   stage 2, experiment B (the paper's zero-shot claim), at the primary N only: VPG-C (and its
 *            no-guidance ablation) trained alone on synthetic which-image-differs pairs, scored on
 *            held-out what-changed questions, a task never trained.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setSeed } from '@mllm/core';
import { HostMLLM, type Tokenizer } from '@mllm/models';
import { trainStage, zeroParameters, type StepReport } from '@mllm-example/common';
import { QFormerVPG, attachVPGC, qformerAttentionReader, type AttachedVPGC } from '@mllm/vpgc';
import { CHAT_OPTIONS, SCENE, differenceGenerator, regionBatch, stage1Batch, syntheticBatch, type ChoiceQuestion } from './data.js';

export interface ExampleConfig {
  batchSize: number;
  stage1Steps: number;
  /** Steps of every experiment-A stage-2 variant (region questions). */
  stage2Steps: number;
  /** Steps of every experiment-B variant (synthetic which-differs pairs). */
  sdtSteps: number;
  stage1Lr: number;
  /** Learning rate of every stage-2 variant (A and B). */
  stage2Lr: number;
  /** Learned queries of the VPG = image tokens per image: the dose of the dose–response curve. */
  queryCounts: number[];
  /** The bottleneck of the primary claim (one of `queryCounts`); experiment B runs here only. */
  primaryQueries: number;
  /** Held-out region questions (experiment A) per seed. */
  regionQuestions: number;
  /** Held-out what-changed and which-differs questions (experiment B) per seed. */
  zeroShotQuestions: number;
}

/** The default budget's settings (`BUDGETS` in run-example.ts sets the steps and questions of each budget). */
export const DEFAULT_CONFIG: ExampleConfig = {
  batchSize: 8,
  stage1Steps: 250,
  stage2Steps: 60,
  sdtSteps: 60,
  // Iteration 2: 1e-3 (iteration 1: 3e-3, where stage 1 never learned the image pathway; docs/examples/vpgc-demonstrative.md).
  stage1Lr: 1e-3,
  stage2Lr: 5e-3,
  queryCounts: [1, 2, 4, 8],
  primaryQueries: 2,
  regionQuestions: 60,
  zeroShotQuestions: 60,
};

/** Experiment A's variants (each from the same frozen stage-1 model). */
export const REGION_VARIANTS = ['frozen', 'vpgc', 'vpgc-noguide', 'tuned-vpg'] as const;
export type RegionVariant = (typeof REGION_VARIANTS)[number];
/** Experiment B's variants (VPG-C trained on synthetic which-differs pairs only). */
export const ZERO_SHOT_VARIANTS = ['frozen', 'sdt-vpgc', 'sdt-vpgc-noguide'] as const;
export type ZeroShotVariant = (typeof ZERO_SHOT_VARIANTS)[number];

/** The parameter-matched control's tensors: the VPG's fixed-query path (queries, output FFN of the last Q-Former layer, projection). */
export const TUNED_VPG_PARAMETERS = [
  'model.mm_projector.query_tokens',
  'model.mm_projector.Qformer.bert.encoder.layer.1.output_query.dense',
  'model.mm_projector.llama_proj',
];

/** Vision tower: 16×16 images in 4×4 patches → CLS + 16 patch features of width 32 (Cheetah's Q-Former reads CLS and every patch). */
export const PATCH_GRID = SCENE.size / 4;

/** The host MLLM (2 layers, 64 wide) with a Q-Former VPG (2 layers, 32 wide, `numQueries` queries) as its projector. */
export function buildHost(tokenizer: Tokenizer, numQueries: number): { model: HostMLLM; vpg: QFormerVPG } {
  const vpg = new QFormerVPG({
    qformer: { hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, encoderWidth: 32 },
    numQueryTokens: numQueries,
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

/** Stage 1: the whole host (vision tower, VPG with `numQueries` queries, LLM) learns the stage-1 mix; frozen afterwards. */
export async function runStage1(seed: number, numQueries: number, tokenizer: Tokenizer, config: ExampleConfig, onStep: (r: StepReport) => void) {
  setSeed(seed * 100 + numQueries);
  const built = buildHost(tokenizer, numQueries);
  try {
    await trainStage({
      model: built.model, stageName: 'stage1', trainable: ['model', 'lm_head'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + numQueries,
      makeBatch: (rng, step) => stage1Batch(rng, tokenizer, config.batchSize, step), onStep,
    });
  } catch (error) {
    built.model.dispose();
    throw error;
  }
  freezeAll(built.model);
  return built;
}

function freezeAll(model: HostMLLM): void {
  for (const [, p] of model.namedParameters()) p.variable.trainable = false;
}

/** The frozen VPG's own cross-attention per patch (what picks the edited object of experiment B). */
export function attentionReaderOf(model: HostMLLM, vpg: QFormerVPG) {
  return qformerAttentionReader(vpg, { featurize: (pixels) => model.encodeImages(pixels), patchGrid: PATCH_GRID, hasClsToken: true });
}

/**
 * Attach VPG-C to the frozen host (zero-initialised: a no-op until trained). `guidance: false` is the
 * ablation: `qformer_proj` (the instruction's view from the middle layer) is written to 0 and frozen,
 * so `Q = query_tokens + 0` — VPG-C re-queries the Q-Former with learned but fixed queries.
 */
export function attachVariant(model: HostMLLM, guidance: boolean): AttachedVPGC {
  const attached = attachVPGC(model); // freezes the host structurally; only VPG-C's tensors train
  if (!guidance) {
    zeroParameters(attached.module.qformerProj);
    for (const [, p] of attached.module.qformerProj.namedParameters()) p.variable.trainable = false;
  }
  return attached;
}

/** Trainable parameter count of a model (for the report: the variants' budgets). */
export function trainableCount(model: HostMLLM): number {
  let n = 0;
  for (const [, p] of model.namedParameters()) if (p.variable.trainable) n += (p.variable.shape as number[]).reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Experiment A, one trained variant on region questions from the frozen stage-1 model. VPG-C
 * variants return the attached module (detach with `remove()` to get the stage-1 model back);
 * `tuned-vpg` changes the host's VPG in place (run it last).
 */
export async function trainRegionVariant(
  model: HostMLLM,
  variant: Exclude<RegionVariant, 'frozen'>,
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<{ attached: AttachedVPGC | null; trainable: number }> {
  setSeed(seed * 1000 + 7);
  const attached = variant === 'tuned-vpg' ? null : attachVariant(model, variant === 'vpgc');
  try {
    // Dropout stays off in every variant (the Q-Former passes alike): the variants differ only in what trains.
    const trainable = variant === 'tuned-vpg' ? TUNED_VPG_PARAMETERS : undefined; // VPG-C: attachVPGC froze the host
    if (trainable) freezeAll(model);
    await trainStage({
      model, stageName: `stage2-${variant}`, trainable, steps: config.stage2Steps, lr: config.stage2Lr, seed: seed * 1000 + 11, // the same batches for every variant
      makeBatch: (rng) => regionBatch(rng, tokenizer, config.batchSize), onStep,
    });
    const count = trainableCount(model);
    freezeAll(model);
    return { attached, trainable: count };
  } catch (error) {
    if (attached) {
      attached.remove();
      attached.module.dispose();
    }
    throw error;
  }
}

/** Experiment B: VPG-C (`guidance: false`: the ablation) trained alone on synthetic which-differs pairs. */
export async function trainSdtVariant(
  model: HostMLLM,
  vpg: QFormerVPG,
  guidance: boolean,
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<{ attached: AttachedVPGC; trainable: number }> {
  setSeed(seed * 1000 + 13);
  const generator = differenceGenerator(seed * 7919 + 1, 'which-differs', attentionReaderOf(model, vpg), PATCH_GRID);
  const attached = attachVariant(model, guidance);
  try {
    await trainStage({
      model, stageName: `sdt-${guidance ? 'vpgc' : 'vpgc-noguide'}`, steps: config.sdtSteps, lr: config.stage2Lr, seed: seed * 1000 + 17,
      makeBatch: (_rng, step) => syntheticBatch(tokenizer, generator.samples(step * config.batchSize, config.batchSize)),
      onStep,
    });
    const count = trainableCount(model);
    freezeAll(model);
    return { attached, trainable: count };
  } catch (error) {
    attached.remove();
    attached.module.dispose();
    throw error;
  }
}

export interface ChoiceResult {
  /** Per question: 1 when the option with the highest mean per-token log-likelihood is the answer (primary ranking). */
  correct: number[];
  /** Per question: the same with the summed log-likelihood. */
  correctSum: number[];
  /** Mean over questions of the correct option's mean per-token log-likelihood (nats). */
  correctLogLik: number;
  /** How often each option position was picked (mean ranking): shows a constant answer at a glance. */
  pickedCounts: number[];
}

/** Accuracy (mean of the 0/1 scores). */
export function accuracyOf(scores: readonly number[]): number {
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** Score each question's options by log-likelihood of the assistant continuation (one batched forward each). */
export function scoreChoices(model: HostMLLM, questions: ChoiceQuestion[], onQuestion?: () => void): ChoiceResult {
  const correct: number[] = [];
  const correctSum: number[] = [];
  let correctLogLik = 0;
  const pickedCounts: number[] = [];
  for (const q of questions) {
    const pixels = tf.tidy(() => tf.stack(q.images.map((p) => tf.tensor3d(p, [SCENE.size, SCENE.size, 3]))) as tf.Tensor4D);
    try {
      const scores = model.scoreOptionsDetailed(q.prompt, pixels, q.options, CHAT_OPTIONS);
      const picked = argmax(scores.map((s) => s.mean));
      pickedCounts[picked] = (pickedCounts[picked] ?? 0) + 1;
      correct.push(picked === q.answerIndex ? 1 : 0);
      correctSum.push(argmax(scores.map((s) => s.sum)) === q.answerIndex ? 1 : 0);
      correctLogLik += scores[q.answerIndex].mean;
    } finally {
      pixels.dispose();
    }
    onQuestion?.();
  }
  return { correct, correctSum, correctLogLik: correctLogLik / questions.length, pickedCounts: Array.from(pickedCounts, (c) => c ?? 0) };
}

function argmax(values: number[]): number {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}
