/**
 * The recipes of the example, all from the same text-pretrained host and with the same steps,
 * learning rates, batch size and data seeds:
 *
 *   pretrain (shared): the text part of the host (embeddings, decoder, head) learns the text-only
 *     lookup skill — it plays the part of the pretrained LLM both papers start from.
 *   llava:  stage 1 trains the projector alone; stage 2 trains LLM + projector (LLaVA's recipe),
 *           on image QA only.
 *   projector (control): both stages train the projector alone, LLM frozen — what freezing the
 *           LLM gives without any Wings module.
 *   wings:  stage 1 trains projector + visual learners (`attn_pool`), base LLM frozen; stage 2
 *           trains visual + textual learners, routers and projector, base LLM frozen (the
 *           @mllm/wings README recipe; the reference finetune script also tunes the LLM at a
 *           5× lower learning rate than the projector, which this example does not do).
 *
 * The vision tower stays frozen at its random init in every stage (no recipe trains it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, loadStateDict, setSeed, stateDict, type StateDict } from '@mllm/core';
import { disposeBatch, HostMLLM, type Tokenizer } from '@mllm/models';
import { injectWings, type WingsInjection } from '@mllm/wings';
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
  stage2Lr: number;
  /** Wings learner rank r. */
  rank: number;
  /** Held-out text questions scored per model. */
  heldOutText: number;
  /** Jittered drawings per held-out image combination. */
  heldOutImageVariants: number;
}

export const DEFAULT_CONFIG: ExampleConfig = {
  imageSize: 16,
  batchSize: 8,
  pretrainSteps: 100,
  stage1Steps: 40,
  stage2Steps: 160,
  pretrainLr: 3e-3,
  stage1Lr: 3e-3,
  stage2Lr: 2e-3,
  rank: 16,
  heldOutText: 96,
  heldOutImageVariants: 4,
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

/** Text-only pretraining for one seed; returns the model and its weights, which both recipes start from (caller disposes both). */
export async function runPretrain(
  seed: number,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<{ model: HostMLLM; weights: StateDict; textAccuracy: number }> {
  setSeed(seed);
  const model = buildHost(tokenizer, config);
  try {
    await train({
      model, stageName: 'pretrain-text', trainable: ['model', 'lm_head'], frozen: ['model.vision_tower', 'model.mm_projector'],
      steps: config.pretrainSteps, lr: config.pretrainLr, sample: (rng) => sampleTextItem(rng, 'train'),
      seed: seed * 100 + 1, tokenizer, config, onStep,
    });
    model.setTrainable(false);
    return { model, weights: stateDict(model), textAccuracy: letterAccuracy(model, tokenizer, heldOutTextFor(config)) };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

export type RecipeName = 'llava' | 'projector' | 'wings';
export const RECIPES: readonly RecipeName[] = ['llava', 'projector', 'wings'];

export interface FinetuneResult {
  model: HostMLLM;
  /** The stage-2 Wings injection (wings recipe only). */
  wings: WingsInjection | null;
}

/** Multimodal fine-tuning of a recipe from the pretrained weights. The caller disposes `model` and `wings.adapter`. */
export async function runFinetune(
  recipe: RecipeName,
  seed: number,
  pretrained: StateDict,
  tokenizer: Tokenizer,
  config: ExampleConfig,
  onStep: (r: StepReport) => void,
): Promise<FinetuneResult> {
  setSeed(seed * 1000 + 7); // the same init stream for both recipes (Wings learners draw after the host)
  const model = buildHost(tokenizer, config);
  loadStateDict(model, pretrained);
  const sample = (rng: () => number) => sampleImageItem(rng, 'train', config.imageSize);
  const common = { model, sample, tokenizer, config, onStep };
  let wings: WingsInjection | null = null;
  try {
    if (recipe === 'llava') {
      await train({ ...common, stageName: 'llava-1-projector', trainable: ['model.mm_projector'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + 2 });
      await train({
        ...common, stageName: 'llava-2-llm+projector', trainable: ['model', 'lm_head'], frozen: ['model.vision_tower'],
        steps: config.stage2Steps, lr: config.stage2Lr, seed: seed * 100 + 3,
      });
    } else if (recipe === 'projector') {
      await train({ ...common, stageName: 'projector-1', trainable: ['model.mm_projector'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + 2 });
      await train({ ...common, stageName: 'projector-2', trainable: ['model.mm_projector'], steps: config.stage2Steps, lr: config.stage2Lr, seed: seed * 100 + 3 });
    } else {
      const stage1 = injectWings(model, { stage: 1, rank: config.rank, routerMaxLength: ROUTER_MAX_LENGTH });
      try {
        await train({ ...common, stageName: 'wings-1-visual', trainable: ['attn_pool', 'model.mm_projector'], steps: config.stage1Steps, lr: config.stage1Lr, seed: seed * 100 + 2 });
      } finally {
        stage1.remove();
      }
      // Stage 2 starts from the stage-1 learners; the routers keep their fresh init (as the reference).
      wings = injectWings(model, { stage: 2, rank: config.rank, routerMaxLength: ROUTER_MAX_LENGTH });
      const learned = stage1.adapter.stateDict();
      try {
        wings.adapter.loadStateDict(learned, { strict: false });
      } finally {
        tf.dispose([...learned.values()]);
        stage1.adapter.dispose();
      }
      await train({
        ...common, stageName: 'wings-2-learners+router', trainable: ['attn_pool', 'attn_t_pool', 'reweight_module', 'model.mm_projector'],
        steps: config.stage2Steps, lr: config.stage2Lr, seed: seed * 100 + 3,
      });
    }
    model.setTrainable(false);
    return { model, wings };
  } catch (error) {
    model.dispose();
    wings?.adapter.dispose();
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
 * Accuracy of the argmax over the four answer letters at the answer position (equivalent to
 * scoring the four one-token options), in batches of 32.
 */
export function letterAccuracy(model: HostMLLM, tokenizer: Tokenizer, items: readonly Item[]): number {
  const letterIds = LETTERS.map((l) => {
    const ids = tokenizer.encode(l);
    if (ids.length !== 1) throw new Error(`letterAccuracy: letter ${l} must be one token, got ${ids.length}`);
    return ids[0];
  });
  let correct = 0;
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
        if (t < 1) throw new Error(`letterAccuracy: item ${start + b} has no supervised answer`);
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
      const scores = picked.arraySync() as number[][];
      picked.dispose();
      tf.dispose([out.logits, out.labels!, out.attentionMask]);
      scores.forEach((s, k) => {
        const best = s.indexOf(Math.max(...s));
        if (LETTERS[best] === chunk[k].answer) correct++;
      });
    } finally {
      disposeBatch(batch);
    }
  }
  return correct / items.length;
}

/** Router blend per token and layer for one item: `visual[layer][t]` = w_v (w_t = 1 − w_v), with token labels. */
export interface RouterBlend {
  prompt: string;
  tokens: string[];
  layers: number[];
  visual: number[][];
}

/** Run one item through a stage-2 Wings model and read each layer's router weights per token. */
export function routerBlend(model: HostMLLM, wings: WingsInjection, tokenizer: Tokenizer, item: Item): RouterBlend {
  const layers = [...wings.config.layers];
  const visual: number[][] = layers.map(() => []);
  const handle = model.addHooks({
    attentionProbsLayers: layers,
    afterAttention: (index, args) => {
      const router = wings.adapter.layer(index)?.router;
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
