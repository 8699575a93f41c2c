/**
 * The recipes of the example, all from the same text-pretrained host, with the same steps, batch
 * size, data seeds (paired: every recipe of a seed sees the same batches) and projector learning rate
 * P = `stage2Lr` in stage 2. What varies is which parameters train and at which learning rate:
 *
 *   pretrain (shared per seed): the text part of the host (embeddings, decoder, head) learns the
 *     text-only skill — it plays the part of the pretrained LLM.
 *   llava@r:  stage 1 trains the projector alone; stage 2 trains the projector at P and the whole
 *     LLM at r·P (r = 0: the LLM stays frozen — that is the projector-only control).
 *   wings@r:  stage 1 trains projector + visual learners (`attn_pool`), base LLM frozen (as the
 *     released pretrain script, `tune_llm False`); stage 2 loads those learners, attaches the textual
 *     learners and routers, and trains learners, routers and projector at P and the whole LLM at r·P
 *     (r = 0: the @mllm/wings README recipe, LLM frozen).
 *   wings-released@r: as wings@r, but with the released finetune script's optimizer groups: only the
 *     projector at P, the LLM and the learners and routers at r·P (run/finetune_wings_*.sh:
 *     `--mm_projector_lr 1e-5 --learning_rate 2e-6 --lr_projector_follow_tuned_keys mm_projector`,
 *     wings/trainer.py `create_optimizer`: the projector group gets `mm_projector_lr`, every other
 *     trained parameter `learning_rate`).
 *   wings-router-frozen@r (ablation): as wings@r with the routers frozen at their initial weights.
 *
 * The vision tower stays frozen at its random init in every stage (no recipe trains it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeStateDict, loadStateDict, setSeed, stateDict, type StateDict } from '@mllm/core';
import { disposeBatch, HostMLLM, type Tokenizer } from '@mllm/models';
import { attachWings, type AttachedWings } from '@mllm/wings';
import { trainStage, type StepReport as CommonStepReport, type TrainStageOptions } from '@mllm-example/common';
import { LETTERS, collateItems, heldOutImageItems, heldOutTextItems, sampleImageItem, sampleTextItem, type Item } from './data.js';

export interface ExampleConfig {
  imageSize: number;
  batchSize: number;
  pretrainSteps: number;
  stage1Steps: number;
  stage2Steps: number;
  pretrainLr: number;
  stage1Lr: number;
  /** P: the stage-2 learning rate of the projector (and of the learners and routers, except in wings-released). */
  stage2Lr: number;
  /** Wings learner rank r. */
  rank: number;
  /** Held-out text questions scored per model. */
  heldOutText: number;
  /** Jittered drawings per held-out image combination. */
  heldOutImageVariants: number;
  /** Held-out image and text prompts the router summary of each Wings run averages over (the first of each set). */
  routerPrompts: number;
  /** The dose axis: the LLM's stage-2 learning rate as a fraction of P (0 = LLM frozen); llava and wings run at each. */
  llmLrRatios: number[];
  /** The released finetune script's ratio (LLM 2e-6 / projector 1e-5): the primary comparison and the ablations run here. */
  primaryRatio: number;
}

export const DEFAULT_CONFIG: ExampleConfig = {
  imageSize: 16,
  batchSize: 8,
  pretrainSteps: 100,
  stage1Steps: 40,
  stage2Steps: 160,
  pretrainLr: 3e-3,
  stage1Lr: 3e-3,
  // P = 1e-2 puts the LLM at 2e-3 at the released ratio, where the LLaVA-style pilot lost text skill
  // (premise checks only: at P = 2e-3 and 5e-3 the LLM at 0.2 × P kept almost all of it).
  stage2Lr: 1e-2,
  rank: 16,
  heldOutText: 224,
  heldOutImageVariants: 16, // 14 held-out combinations × 16 drawings = 224 image questions
  routerPrompts: 16,
  llmLrRatios: [0, 0.1, 0.2, 1],
  primaryRatio: 0.2,
};

export const ROUTER_MAX_LENGTH = 128;

/** The host MLLM of the example (tiny: 2 layers, 64 wide; 16×16 images in 4×4 patches). */
export function buildHost(tokenizer: Tokenizer, config: ExampleConfig): HostMLLM {
  return new HostMLLM({
    config: {
      text: { vocabSize: tokenizer.vocabSize, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, maxLength: ROUTER_MAX_LENGTH },
      vision: { imageSize: config.imageSize, patchSize: 4, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64 },
    },
    tokenizer,
  });
}

/** The common step report plus the stage it belongs to. */
export interface StepReport extends CommonStepReport {
  stage: string;
}

/** One stage (common `trainStage`) on batches of `sample`'s items; reports carry the stage name. */
async function train(
  args: Omit<TrainStageOptions, 'makeBatch' | 'onStep'> & {
    stageName: string;
    sample: (rng: () => number) => Item;
    tokenizer: Tokenizer;
    config: ExampleConfig;
    onStep: (report: StepReport) => void;
  },
): Promise<void> {
  await trainStage({
    ...args,
    makeBatch: (rng) => collateItems(args.tokenizer, Array.from({ length: args.config.batchSize }, () => args.sample(rng))),
    onStep: (m) => args.onStep({ stage: args.stageName, ...m }),
  });
}

/** Text-only pretraining for one seed; returns the model and its weights, which every recipe starts from (caller disposes both). */
export async function runPretrain(
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<{ model: HostMLLM; weights: StateDict }> {
  setSeed(seed);
  const model = buildHost(tokenizer, config);
  try {
    await train({
      model, stageName: 'pretrain-text', trainable: ['model', 'lm_head'], frozen: ['model.vision_tower', 'model.mm_projector'],
      steps: config.pretrainSteps, lr: config.pretrainLr, sample: (rng) => sampleTextItem(rng, 'train'),
      seed: seed * 100 + 1, tokenizer, config, onStep,
    });
    model.setTrainable(false);
    return { model, weights: stateDict(model) };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

export type RecipeName = 'llava' | 'wings' | 'wings-released' | 'wings-router-frozen';

/** One stage-2 run of a seed: a recipe at an LLM learning-rate ratio. */
export interface RunSpec {
  recipe: RecipeName;
  /** LLM learning rate ÷ P in stage 2 (0 = LLM frozen). */
  ratio: number;
}

export const runLabel = (run: RunSpec): string => `${run.recipe}@${run.ratio}`;

/** Every stage-2 run of a seed: llava and wings at each ratio, the released groups and the router ablation at the primary ratio. */
export function stage2Runs(config: ExampleConfig): RunSpec[] {
  if (!config.llmLrRatios.includes(0)) throw new Error(`llmLrRatios must include 0 (the frozen-LLM recipes and the projector-only control), got ${config.llmLrRatios.join(', ')}`);
  if (!config.llmLrRatios.includes(config.primaryRatio)) throw new Error(`primaryRatio must be one of llmLrRatios (${config.llmLrRatios.join(', ')}), got ${config.primaryRatio}`);
  if (!(config.primaryRatio > 0)) throw new Error(`primaryRatio must be > 0 (the LLM is tuned), got ${config.primaryRatio}`);
  for (const r of config.llmLrRatios) if (!(r >= 0 && r <= 1)) throw new Error(`llmLrRatios must lie in [0, 1], got ${r}`);
  return [
    ...config.llmLrRatios.flatMap((ratio): RunSpec[] => [{ recipe: 'llava', ratio }, { recipe: 'wings', ratio }]),
    { recipe: 'wings-released', ratio: config.primaryRatio },
    { recipe: 'wings-router-frozen', ratio: config.primaryRatio },
  ];
}

export interface FinetuneResult {
  model: HostMLLM;
  /** The stage-2 Wings module (Wings recipes only). */
  wings: AttachedWings | null;
}

const LLM: string[] = ['model', 'lm_head']; // the whole text model (the vision tower is frozen separately)
const LEARNERS = ['attn_pool', 'attn_t_pool', 'reweight_module'];

/** Multimodal fine-tuning of one run from the pretrained weights. The caller disposes `model` and `wings.module`. */
export async function runFinetune(
  run: RunSpec,
  seed: number,
  pretrained: StateDict,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<FinetuneResult> {
  setSeed(seed * 1000 + 7); // the same init stream for every recipe of a seed (Wings learners draw after the host)
  const model = buildHost(tokenizer, config);
  loadStateDict(model, pretrained);
  const sample = (rng: () => number) => sampleImageItem(rng, 'train', config.imageSize);
  const common = { model, sample, tokenizer, config, onStep };
  const label = runLabel(run);
  const P = config.stage2Lr;
  const llmLr = run.ratio * P;
  const tuned = run.ratio > 0;
  let wings: AttachedWings | null = null;
  try {
    if (run.recipe === 'llava') {
      await train({ ...common, stageName: `${label} 1-projector`, trainable: ['model.mm_projector'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + 2 });
      await train({
        ...common,
        stageName: tuned ? `${label} 2-llm+projector` : `${label} 2-projector`,
        trainable: tuned ? LLM : ['model.mm_projector'], frozen: ['model.vision_tower'],
        steps: config.stage2Steps, lr: P, seed: seed * 100 + 3,
        // Groups cascade: the LLM at r·P, then the projector back at P.
        groups: tuned ? [{ name: 'llm', params: LLM, lr: llmLr }, { name: 'projector', params: ['model.mm_projector'], lr: P }] : undefined,
      });
    } else {
      const stage1 = attachWings(model, { stage: 1, rank: config.rank, routerMaxLength: ROUTER_MAX_LENGTH });
      try {
        await train({ ...common, stageName: `${label} 1-visual`, trainable: ['attn_pool', 'model.mm_projector'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + 2 });
      } finally {
        stage1.remove();
      }
      // Stage 2 starts from the stage-1 learners; the routers keep their fresh init (as the reference).
      wings = attachWings(model, { stage: 2, rank: config.rank, routerMaxLength: ROUTER_MAX_LENGTH });
      const learned = stage1.stateDict();
      try {
        wings.loadStateDict(learned, { strict: false });
      } finally {
        disposeStateDict(learned);
        stage1.module.dispose();
      }
      const routerFrozen = run.recipe === 'wings-router-frozen';
      const fast = ['model.mm_projector', ...LEARNERS.filter((k) => !(routerFrozen && k === 'reweight_module'))];
      const groups = !tuned
        ? undefined
        : run.recipe === 'wings-released'
          ? [{ name: 'llm+learners', params: LLM, lr: llmLr }, { name: 'projector', params: ['model.mm_projector'], lr: P }]
          : [{ name: 'llm', params: LLM, lr: llmLr }, { name: 'projector+learners', params: fast, lr: P }];
      await train({
        ...common,
        stageName: `${label} 2-${tuned ? 'llm+' : ''}learners+${routerFrozen ? '' : 'router+'}projector`,
        trainable: tuned ? LLM : fast,
        frozen: ['model.vision_tower', ...(routerFrozen ? ['reweight_module'] : [])],
        steps: config.stage2Steps, lr: P, seed: seed * 100 + 3, groups,
      });
    }
    model.setTrainable(false);
    return { model, wings };
  } catch (error) {
    model.dispose();
    wings?.module.dispose();
    throw error;
  }
}

/** The held-out text questions (the same for every seed and recipe). */
export function heldOutTextFor(config: ExampleConfig): Item[] {
  return heldOutTextItemsCached(config.heldOutText);
}

const textCache = new Map<number, Item[]>();
function heldOutTextItemsCached(count: number): Item[] {
  if (!textCache.has(count)) textCache.set(count, heldOutTextItems(count, createRng(424242)));
  return textCache.get(count)!;
}

/** The held-out image questions (the same for every seed and recipe). */
export function heldOutImagesFor(config: ExampleConfig): Item[] {
  return heldOutImageItems(config.imageSize, config.heldOutImageVariants, createRng(515151));
}

/**
 * Per-question scores (1 = right, 0 = wrong) of the argmax over the four answer letters at the
 * answer position (equivalent to scoring the four one-token options), in batches of 32.
 */
export function letterScores(model: HostMLLM, tokenizer: Tokenizer, items: readonly Item[]): number[] {
  const letterIds = LETTERS.map((l) => {
    const ids = tokenizer.encode(l);
    if (ids.length !== 1) throw new Error(`letterScores: letter ${l} must be one token, got ${ids.length}`);
    return ids[0];
  });
  const scores: number[] = [];
  for (let start = 0; start < items.length; start += 32) {
    const chunk = items.slice(start, start + 32);
    const batch = collateItems(tokenizer, chunk);
    try {
      const out = model.forward(batch);
      const labels = out.labels!.arraySync() as number[][];
      const rows: number[] = [];
      const positions: number[] = [];
      labels.forEach((row, b) => {
        const t = row.findIndex((id) => id >= 0);
        if (t < 1) throw new Error(`letterScores: item ${start + b} has no supervised answer`);
        rows.push(b);
        positions.push(t - 1);
      });
      const V = out.logits.shape[2];
      const L = out.logits.shape[1];
      const picked = tf.tidy(() => {
        const flat = tf.reshape(out.logits, [-1, V]); // [B·L, V]
        const at = tf.gather(flat, tf.tensor1d(rows.map((b, k) => b * L + positions[k]), 'int32')); // [B, V]
        return tf.gather(at, tf.tensor1d(letterIds, 'int32'), 1); // [B, 4]
      });
      const logits = picked.arraySync() as number[][];
      picked.dispose();
      tf.dispose([out.logits, out.labels!, out.attentionMask]);
      logits.forEach((s, k) => {
        const best = s.indexOf(Math.max(...s));
        scores.push(LETTERS[best] === chunk[k].answer ? 1 : 0);
      });
    } finally {
      disposeBatch(batch);
    }
  }
  return scores;
}

/** Accuracy (fraction right) of `letterScores`. */
export function letterAccuracy(model: HostMLLM, tokenizer: Tokenizer, items: readonly Item[]): number {
  const scores = letterScores(model, tokenizer, items);
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** Router blend per token and layer for one item: `visual[layer][t]` = w_v (w_t = 1 − w_v), with token labels. */
export interface RouterBlend {
  prompt: string;
  tokens: string[];
  layers: number[];
  visual: number[][];
}

/** Run one item through a stage-2 Wings model and read each layer's router weights per token. */
export function routerBlend(model: HostMLLM, wings: AttachedWings, tokenizer: Tokenizer, item: Item): RouterBlend {
  const layers = [...wings.config.layers];
  const visual: number[][] = layers.map(() => []);
  const handle = model.addHooks({
    attentionProbsLayers: layers,
    afterAttention: (index, args) => {
      const router = wings.module.layer(index)?.router;
      if (!router || !args.attentionProbs) return null;
      const weights = router.forward(args.attentionProbs); // [1, L, 1] each
      visual[layers.indexOf(index)] = Array.from(weights.visual.dataSync());
      tf.dispose([weights.visual, weights.textual]);
      return null;
    },
  });
  const batch = collateItems(tokenizer, [item]);
  try {
    const out = model.forward(batch);
    const span = out.imageSpans[0][0];
    tf.dispose([out.logits, out.labels!, out.attentionMask]);
    const ids = Array.from(batch.inputIds.dataSync());
    const tokens: string[] = [];
    for (const id of ids) {
      if (id === tokenizer.imageId && span) for (let k = 0; k < span.length; k++) tokens.push(`img${k}`);
      else tokens.push(tokenizer.decode([id]).replace(/\n/g, '⏎') || `<${id}>`);
    }
    return { prompt: item.prompt, tokens, layers, visual };
  } finally {
    disposeBatch(batch);
    handle.remove();
  }
}

/** Mean router weight w_visual per layer: on the image tokens and the text tokens of image prompts, and on text-only prompts. */
export interface RouterSummary {
  layers: number[];
  imageTokens: number[];
  imagePromptText: number[];
  textOnly: number[];
}

/** `routerBlend` averaged over `images` and `texts` (token-weighted means per layer). */
export function routerSummary(model: HostMLLM, wings: AttachedWings, tokenizer: Tokenizer, images: readonly Item[], texts: readonly Item[]): RouterSummary {
  const layers = [...wings.config.layers];
  const sums = { imageTokens: layers.map(() => [0, 0]), imagePromptText: layers.map(() => [0, 0]), textOnly: layers.map(() => [0, 0]) };
  const add = (acc: number[][], blend: RouterBlend, select: (token: string) => boolean) =>
    blend.visual.forEach((row, i) => row.forEach((w, t) => {
      if (select(blend.tokens[t])) (acc[i][0] += w), acc[i][1]++;
    }));
  for (const item of images) {
    const blend = routerBlend(model, wings, tokenizer, item);
    add(sums.imageTokens, blend, (t) => t.startsWith('img'));
    add(sums.imagePromptText, blend, (t) => !t.startsWith('img'));
  }
  for (const item of texts) add(sums.textOnly, routerBlend(model, wings, tokenizer, item), () => true);
  const mean = (acc: number[][]) => acc.map(([s, n]) => (n ? s / n : NaN));
  return { layers, imageTokens: mean(sums.imageTokens), imagePromptText: mean(sums.imagePromptText), textOnly: mean(sums.textOnly) };
}
