/**
 * The stages and recipes of the Parrot experiment (Parrot's premise built into the setting):
 *
 *   stage 0 (shared, text only): LLM + lm_head learn the task in text in all six languages — the
 *     "multilingual LLM" Parrot starts from (the vision tower and projector are untouched).
 *   stage 1 (shared, English only): projector only, image questions in English — the paper's
 *     English-dominated alignment (the MoE, where present later, is not there yet).
 *   stage 2, per recipe, share p and seed: LLM + projector (+ module) on an English-heavy mix
 *     (English 1 − p, each other language p / 5), vision tower frozen:
 *       baseline        the LLaVA recipe: no module;
 *       parrot          + ParrotMoE (6 experts, α = 0.1), routed by the prompt's text;
 *       parrot-uniform  + the same MoE with its router frozen at zero logits (weights 1/6 for every
 *                       prompt): the capacity of the MoE without language-dependent routing;
 *       mlp             + one SwiGLU expert of 6× the width (E = 1, I = 6·64), parameter-matched to the
 *                       MoE's experts (the MoE's 384 router weights aside): a plain MLP in its place.
 *
 * The vision tower is a fixed random patch ViT throughout (a stand-in for a frozen pretrained encoder:
 * colour is linearly readable from its features).
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadStateDict, setSeed, stateDict, type StateDict } from '@mllm/core';
import { HostMLLM, type Tokenizer } from '@mllm/models';
import { attachParrot, type ParrotMoE } from '@mllm/parrot';
import { trainStage, zeroParameters, type StepReport } from '@mllm-example/common';
import { ENGLISH_ONLY, LANGUAGES, colourWords, mixForShare, type Language } from './questions.js';
import { CHAT_OPTIONS, answerOf, imageBatch, questionOf, textBatch, type ColourQuestion } from './dataset.js';

export interface ExampleConfig {
  imageSize: number;
  batchSize: number;
  stage0Steps: number;
  stage1Steps: number;
  stage2Steps: number;
  stage0Lr: number;
  stage1Lr: number;
  stage2Lr: number;
  moeLr: number;
  numExperts: number;
  /** Non-English shares of the stage-2 mix (the dose–response curve). */
  shares: number[];
  /** The share where the primary comparison and the ablations run (one of `shares`). */
  primaryShare: number;
}

export const DEFAULT_CONFIG: ExampleConfig = {
  imageSize: 16,
  batchSize: 8,
  stage0Steps: 300,
  stage1Steps: 100,
  stage2Steps: 60,
  stage0Lr: 3e-3,
  stage1Lr: 3e-3,
  stage2Lr: 2e-3,
  moeLr: 2e-3,
  numExperts: 6,
  shares: [0.01, 0.02, 0.05, 0.1],
  primaryShare: 0.05,
};

/** The host MLLM of the example (tiny: 2 layers, 64 wide; 16×16 images in 4×4 patches + CLS). */
export function buildHost(tokenizer: Tokenizer, config: ExampleConfig): HostMLLM {
  return new HostMLLM({
    config: {
      text: { vocabSize: tokenizer.vocabSize, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, maxLength: 128 },
      vision: {
        imageSize: config.imageSize, patchSize: 4, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64,
        selectFeature: 'cls_patch', // Parrot's MoE reads the projected CLS token (row 0)
      },
    },
    tokenizer,
  });
}

export type { StepReport };

/** Stages 0 and 1 for one seed; returns the weights every stage 2 starts from. */
export async function runPretraining(
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (stage: 'stage 0' | 'stage 1', r: StepReport) => void,
): Promise<StateDict> {
  setSeed(seed);
  const model = buildHost(tokenizer, config);
  try {
    await trainStage({
      model, stageName: 'stage0-text', trainable: ['model', 'lm_head'], frozen: ['model.vision_tower', 'model.mm_projector'],
      steps: config.stage0Steps, lr: config.stage0Lr, seed, onStep: (r) => onStep('stage 0', r),
      makeBatch: (rng) => textBatch(rng, tokenizer, config.batchSize),
    });
    await trainStage({
      model, stageName: 'stage1-align-english', trainable: ['model.mm_projector'],
      steps: config.stage1Steps, lr: config.stage1Lr, seed: seed + 1, onStep: (r) => onStep('stage 1', r),
      makeBatch: (rng) => imageBatch(rng, tokenizer, config.batchSize, config.imageSize, ENGLISH_ONLY),
    });
    return stateDict(model);
  } finally {
    model.dispose();
  }
}

export const RECIPES = ['baseline', 'parrot', 'parrot-uniform', 'mlp'] as const;
export type RecipeName = (typeof RECIPES)[number];

export interface Stage2Result {
  model: HostMLLM;
  moe: ParrotMoE | null;
  /** Routing weights captured during evaluation, per language (MoE recipes). */
  routing: Map<Language, number[][]>;
  /** Set before a held-out batch runs, so captured routing weights are filed under its language. */
  setCurrentLanguage(language: Language | undefined): void;
}

/** Stage 2 of a recipe at non-English share `share`, from the pretrained weights. The caller disposes `model` (and `moe`). */
export async function runStage2(
  recipe: RecipeName,
  share: number,
  seed: number,
  pretrained: StateDict,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<Stage2Result> {
  setSeed(seed * 1000 + 7); // the same MoE / MLP initialisation at every share
  const model = buildHost(tokenizer, config);
  loadStateDict(model, pretrained);
  let moe: ParrotMoE | null = null;
  const routing = new Map<Language, number[][]>(LANGUAGES.map((l) => [l, []]));
  let currentLanguage: Language | undefined;
  const frozen = ['model.vision_tower'];
  if (recipe !== 'baseline') {
    const D = 64;
    moe = attachParrot(model, {
      // mlp: one expert as wide as the six together (3·D·6D weights = 6 experts of 3·D·D).
      intermediateSize: recipe === 'mlp' ? config.numExperts * D : D,
      numExperts: recipe === 'mlp' ? 1 : config.numExperts,
      moeWeight: 0.1,
      onForward: ({ routingWeights }) => {
        if (currentLanguage) routing.get(currentLanguage)!.push(...(routingWeights.arraySync() as number[][]));
      },
    }).module;
    if (recipe === 'parrot-uniform') {
      // Zero router logits → softmax = 1/E for every prompt; frozen so it stays uniform.
      zeroParameters(moe.gate);
      frozen.push('model.moe_model.gate');
    }
  }
  await trainStage({
    model, stageName: `stage2-${recipe}`, trainable: ['model', 'lm_head'], frozen,
    steps: config.stage2Steps, lr: config.stage2Lr,
    groups: moe ? [{ name: 'moe', params: [moe], lr: config.moeLr }] : undefined,
    makeBatch: (rng) => imageBatch(rng, tokenizer, config.batchSize, config.imageSize, mixForShare(share)), seed: seed + 1, onStep,
  });
  for (const [, p] of model.namedParameters()) p.variable.trainable = false;
  return { model, moe, routing, setCurrentLanguage: (l) => (currentLanguage = l) };
}

/** Per-question scores of one model on the held-out set (1 / 0 per question, held-out order). */
export interface QuestionScores {
  /** The generated text equals the colour word in the prompt's language. */
  exact: number[];
  /** The generated text is one of the prompt language's colour words (right or wrong colour). */
  rightLanguage: number[];
  /** The generated text is an English colour word (for a non-English prompt: "multilingual erosion"). */
  english: number[];
  /** Up to 3 generated texts per language, for the report. */
  samples: Partial<Record<Language, string[]>>;
}

/** Longest colour word (characters = tokens of the char tokenizer) + the end-of-turn token. */
const MAX_NEW_TOKENS = Math.max(...LANGUAGES.flatMap((l) => colourWords(l).map((w) => w.length))) + 1;

/**
 * Greedy free generation for every held-out question, batched per language (`chunk` prompts a
 * forward: the prompts of one language have the same length, so nothing is padded), scored by exact
 * match and by the language of the answer. `text: true` puts the English colour word where the image
 * sits (the stage-0 premise check: can the LLM answer every language in text?).
 */
export function scoreQuestions(
  model: HostMLLM,
  questions: ColourQuestion[],
  options: { text?: boolean; chunk?: number; beforeBatch?: (language: Language | undefined) => void } = {},
): QuestionScores {
  const chunk = options.chunk ?? 100;
  const scores: QuestionScores = { exact: [], rightLanguage: [], english: [], samples: {} };
  for (let start = 0; start < questions.length; ) {
    const language = questions[start].language;
    let end = start;
    while (end < questions.length && end - start < chunk && questions[end].language === language) end++;
    const batch = questions.slice(start, end);
    const prompts = batch.map((q) => (options.text ? `${answerOf('en', q.colour)}\n` : '<image>\n') + questionOf(language));
    const pixels = options.text ? null : (tf.tidy(() => tf.stack(batch.map((q) => tf.tensor3d(q.scene.pixels, [q.scene.size, q.scene.size, 3])))) as tf.Tensor4D);
    options.beforeBatch?.(language);
    let texts: string[];
    try {
      texts = model.generate(prompts, pixels, { maxNewTokens: MAX_NEW_TOKENS, ...CHAT_OPTIONS }).texts.map((t) => t.trim());
    } finally {
      options.beforeBatch?.(undefined);
      pixels?.dispose();
    }
    batch.forEach((q, i) => {
      scores.exact.push(texts[i] === answerOf(language, q.colour) ? 1 : 0);
      scores.rightLanguage.push(colourWords(language).includes(texts[i]) ? 1 : 0);
      scores.english.push(colourWords('en').includes(texts[i]) ? 1 : 0);
    });
    const kept = (scores.samples[language] ??= []);
    kept.push(...texts.slice(0, 3 - kept.length));
    start = end;
  }
  return scores;
}
