/**
 * The two training recipes, run with the same budget and seeds:
 *
 *   stage 1 (shared): the whole host MLLM learns the task in English only — it plays the part of
 *     the English-centric pretrained MLLM (CLIP + LLM + aligned projector) Parrot starts from.
 *   stage 2, baseline: instruction tuning of LLM + projector on the English-heavy multilingual mix.
 *   stage 2, Parrot:   the same, plus ParrotMoE (stage 2 of the paper: MoE on and trained).
 *
 * The vision tower is frozen in stage 2, as in both papers' recipes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadStateDict, setSeed, stateDict, type StateDict } from '@mllm/core';
import { HostMLLM, type Tokenizer } from '@mllm/models';
import { attachParrot, type ParrotMoE } from '@mllm/parrot';
import { trainStage, type StepReport } from '@mllm-example/common';
import { ENGLISH_HEAVY_MIX, LANGUAGES, type Language, type OptionOrder, type QuestionKind } from './questions.js';
import { CHAT_OPTIONS, trainingBatch } from './dataset.js';

export interface ExampleConfig {
  imageSize: number;
  batchSize: number;
  stage1Steps: number;
  stage2Steps: number;
  stage1Lr: number;
  stage2Lr: number;
  moeLr: number;
  numExperts: number;
  /** Question kinds in training and in the held-out set. */
  questionKinds: QuestionKind[];
  /**
   * `per-language` (default): each language lists the options in its own fixed order, so the answer
   * depends on the prompt's language (the multilingual part). `fixed`: the letter follows from the
   * image alone (measured: 100 % everywhere). `shuffled`: the model must read the option words
   * (measured: still at chance after 300 stage-1 steps, beyond this example's budget).
   */
  optionOrder: OptionOrder;
}

export const DEFAULT_CONFIG: ExampleConfig = {
  imageSize: 16,
  batchSize: 8,
  // Measured here: a 2-layer, 64-wide host learns colour questions after a ~150-step plateau;
  // mixing kinds (colour + position) stayed at chance for 300 steps, beyond this example's budget.
  questionKinds: ['colour'],
  optionOrder: 'per-language',
  stage1Steps: 300,
  stage2Steps: 80,
  stage1Lr: 3e-3,
  stage2Lr: 2e-3,
  moeLr: 2e-3,
  numExperts: 6,
};

export const ENGLISH_ONLY: Record<Language, number> = { en: 1, zh: 0, pt: 0, ar: 0, tr: 0, ru: 0 };

/** The host MLLM of the example (tiny: 2 layers, 64 wide; 16×16 images in 4×4 patches + CLS). */
export function buildHost(tokenizer: Tokenizer, config: ExampleConfig): HostMLLM {
  return new HostMLLM({
    config: {
      text: { vocabSize: tokenizer.vocabSize, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, maxLength: 256 },
      vision: {
        imageSize: config.imageSize, patchSize: 4, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64,
        selectFeature: 'cls_patch', // Parrot's MoE reads the projected CLS token (row 0)
      },
    },
    tokenizer,
  });
}

export type { StepReport };

/** Seeded training batches of `mix` (the stage's rng draws them). */
function batchesOf(mix: Record<Language, number>, tokenizer: Tokenizer, config: ExampleConfig) {
  return (rng: () => number) => trainingBatch(rng, tokenizer, config.batchSize, config.imageSize, mix, config.questionKinds, config.optionOrder);
}

/** Stage 1 for one seed; returns the weights every stage 2 starts from. */
export async function runStage1(seed: number, tokenizer: Tokenizer, config: ExampleConfig, onStep: (r: StepReport) => void): Promise<StateDict> {
  setSeed(seed);
  const model = buildHost(tokenizer, config);
  try {
    await trainStage({
      model, stageName: 'stage1-english', trainable: ['model', 'lm_head'], steps: config.stage1Steps, lr: config.stage1Lr,
      makeBatch: batchesOf(ENGLISH_ONLY, tokenizer, config), seed, onStep,
    });
    return stateDict(model);
  } finally {
    model.dispose();
  }
}

export type RecipeName = 'baseline' | 'parrot';

export interface Stage2Result {
  model: HostMLLM;
  moe: ParrotMoE | null;
  /** Routing weights captured during evaluation, per language (Parrot only). */
  routing: Map<Language, number[][]>;
  /** Set before a held-out question runs, so captured routing weights are filed under its language. */
  setCurrentLanguage(language: Language | undefined): void;
}

/** Stage 2 of a recipe, from the stage-1 weights. The caller disposes `model` (and `moe`). */
export async function runStage2(
  recipe: RecipeName,
  seed: number,
  stage1: StateDict,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<Stage2Result> {
  setSeed(seed * 1000 + 7);
  const model = buildHost(tokenizer, config);
  loadStateDict(model, stage1);
  let moe: ParrotMoE | null = null;
  const routing = new Map<Language, number[][]>(LANGUAGES.map((l) => [l, []]));
  let currentLanguage: Language | undefined;
  if (recipe === 'parrot') {
    // The MoE is built from the host's shape (D = hidden size 64); the host's trainable flags are left to train().
    moe = attachParrot(model, {
      intermediateSize: 64,
      numExperts: config.numExperts,
      moeWeight: 0.1,
      onForward: ({ routingWeights }) => {
        if (currentLanguage) routing.get(currentLanguage)!.push(...(routingWeights.arraySync() as number[][]));
      },
    }).module;
  }
  await trainStage({
    model, stageName: `stage2-${recipe}`, trainable: ['model', 'lm_head'], frozen: ['model.vision_tower'],
    steps: config.stage2Steps, lr: config.stage2Lr,
    groups: moe ? [{ name: 'moe', params: [moe], lr: config.moeLr }] : undefined,
    makeBatch: batchesOf(ENGLISH_HEAVY_MIX, tokenizer, config), seed: seed + 1, onStep,
  });
  for (const [, p] of model.namedParameters()) p.variable.trainable = false;
  return { model, moe, routing, setCurrentLanguage: (l) => (currentLanguage = l) };
}

/** Greedy answer and option-letter scores on one image, without a system turn (as trained). */
export function evalModelOf(model: HostMLLM, onQuestion?: (language: string | undefined) => void) {
  const pixelsOf = (images: readonly tf.Tensor3D[]) => (images.length ? (tf.stack(images as tf.Tensor3D[]) as tf.Tensor4D) : null);
  const prefix = (images: readonly tf.Tensor3D[]) => '<image>'.repeat(images.length) + (images.length ? '\n' : '');
  return {
    name: 'host',
    generate(prompt: string, images: readonly tf.Tensor3D[]): string {
      const pixels = pixelsOf(images);
      try {
        return model.generate(prefix(images) + prompt, pixels, { maxNewTokens: 3, ...CHAT_OPTIONS }).texts[0];
      } finally {
        pixels?.dispose();
      }
    },
    scoreOptions(prompt: string, images: readonly tf.Tensor3D[], options: readonly { letter: string }[]): number[] {
      const pixels = pixelsOf(images);
      try {
        return model.scoreOptions(prefix(images) + prompt, pixels, options.map((o) => o.letter), CHAT_OPTIONS);
      } finally {
        pixels?.dispose();
      }
    },
    onQuestion,
  };
}
