/**
 * The units of work of the example (run in worker threads, one tfjs backend each, or inline):
 * `pretrain` (stages 0 and 1, shared) writes its weights to disk and scores the premise checks;
 * `stage2` for a (recipe, share, seed) loads them, trains, and scores the held-out questions.
 */
import { writeFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeStateDict, initBackend, loadStateDict, readSafetensorsFile, stateDict, writeSafetensorsFile, type BackendRequest } from '@mllm/core';
import { saveHostModel } from '@mllm/models';
import { exampleTokenizer, heldOutQuestions, type ColourQuestion } from './dataset.js';
import { buildHost, runPretraining, runStage2, scoreQuestions, type ExampleConfig, type QuestionScores, type RecipeName, type StepReport } from './recipe.js';
import type { Language } from './questions.js';

export type Task =
  | { kind: 'pretrain'; seed: number }
  | { kind: 'stage2'; seed: number; recipe: RecipeName; share: number; checkpointDir: string | null };

export interface TaskContext {
  backend: BackendRequest;
  config: ExampleConfig;
  /** Where the shared pretrained weights live (reused across runs with the same settings). */
  cacheDir: string;
  /** Held-out questions per language. */
  perLanguage: number;
  onStep: (task: Task, stage: string, report: StepReport) => void;
}

export interface PretrainOutcome {
  kind: 'pretrain';
  /** After stage 0: the English colour word in the image's place, question in each language. */
  textPremise: QuestionScores;
  /** After stage 1 (English-only alignment), before stage 2: the image questions. */
  afterAlignment: QuestionScores;
}

export interface Stage2Outcome {
  kind: 'stage2';
  seed: number;
  recipe: RecipeName;
  share: number;
  scores: QuestionScores;
  /** Mean routing weight per expert for each language (MoE recipes). */
  routingByLanguage: Partial<Record<Language, number[]>>;
}

export type Outcome = PretrainOutcome | Stage2Outcome;

export function taskLabel(task: Task): string {
  return task.kind === 'pretrain' ? `pretrain (seed ${task.seed})` : `seed ${task.seed} ${task.recipe} ${(100 * task.share).toFixed(0)}%`;
}

/** Seed of the held-out questions (fixed: every recipe, share and seed is scored on the same questions). */
export const HELD_OUT_SEED = 12345;

export function heldOutOf(ctx: Pick<TaskContext, 'perLanguage' | 'config'>): ColourQuestion[] {
  return heldOutQuestions(createRng(HELD_OUT_SEED), ctx.perLanguage, ctx.config.imageSize);
}

/** Where the pretrained (stages 0 + 1) weights are kept; reused by later runs with the same settings. */
export const pretrainedPath = (cacheDir: string) => `${cacheDir}/pretrained.safetensors`;

let backendReady: Promise<unknown> | null = null;

/** Run one task on this thread's tfjs (initialising the backend once). */
export async function runTask(task: Task, ctx: TaskContext): Promise<Outcome | null> {
  backendReady ??= initBackend(ctx.backend, { fastCpuKernels: true }); // this process is the example's own
  await backendReady;
  const tokenizer = exampleTokenizer();
  const heldOut = heldOutOf(ctx);
  if (task.kind === 'pretrain') {
    const weights = await runPretraining(task.seed, tokenizer, ctx.config, (stage, r) => ctx.onStep(task, stage, r));
    const model = buildHost(tokenizer, ctx.config);
    try {
      await writeSafetensorsFile(pretrainedPath(ctx.cacheDir), weights, { pretrained: pretrainKey(task.seed, ctx.config) });
      loadStateDict(model, weights);
      return { kind: 'pretrain', textPremise: scoreQuestions(model, heldOut, { text: true }), afterAlignment: scoreQuestions(model, heldOut) };
    } finally {
      model.dispose();
      disposeStateDict(weights);
    }
  }
  const { tensors: pretrained } = await readSafetensorsFile(pretrainedPath(ctx.cacheDir));
  const result = await runStage2(task.recipe, task.share, task.seed, pretrained, tokenizer, ctx.config, (r) => ctx.onStep(task, 'stage 2', r)).finally(() =>
    tf.dispose([...pretrained.values()]),
  );
  try {
    const scores = scoreQuestions(result.model, heldOut, { beforeBatch: result.setCurrentLanguage });
    const routingByLanguage: Stage2Outcome['routingByLanguage'] = {};
    for (const [language, rows] of result.routing) {
      if (!rows.length) continue;
      routingByLanguage[language] = rows[0].map((_, e) => rows.reduce((s, r) => s + r[e], 0) / rows.length);
    }
    if (task.checkpointDir) await saveCheckpoint(task.checkpointDir, result);
    return { kind: 'stage2', seed: task.seed, recipe: task.recipe, share: task.share, scores, routingByLanguage };
  } finally {
    result.model.dispose();
    result.moe?.dispose();
  }
}

/** What identifies the pretrained weights: their seed and every setting that shapes them. */
export function pretrainKey(seed: number, config: ExampleConfig): string {
  const { imageSize, batchSize, stage0Steps, stage1Steps, stage0Lr, stage1Lr } = config;
  return JSON.stringify({ seed, imageSize, batchSize, stage0Steps, stage1Steps, stage0Lr, stage1Lr });
}

/** True when `cacheDir` already holds pretrained weights made with these settings. */
export async function hasPretrained(cacheDir: string, seed: number, config: ExampleConfig): Promise<boolean> {
  try {
    const { metadata, tensors } = await readSafetensorsFile(pretrainedPath(cacheDir), { filter: () => false });
    tf.dispose([...tensors.values()]);
    return metadata?.pretrained === pretrainKey(seed, config);
  } catch {
    return false;
  }
}

/** Scores of the premise checks only (for a run that reuses cached pretrained weights). */
export async function scorePretrained(ctx: Omit<TaskContext, 'onStep'>): Promise<PretrainOutcome> {
  backendReady ??= initBackend(ctx.backend, { fastCpuKernels: true });
  await backendReady;
  const tokenizer = exampleTokenizer();
  const heldOut = heldOutOf(ctx);
  const { tensors } = await readSafetensorsFile(pretrainedPath(ctx.cacheDir));
  const model = buildHost(tokenizer, ctx.config);
  try {
    loadStateDict(model, tensors);
    return { kind: 'pretrain', textPremise: scoreQuestions(model, heldOut, { text: true }), afterAlignment: scoreQuestions(model, heldOut) };
  } finally {
    model.dispose();
    tf.dispose([...tensors.values()]);
  }
}

async function saveCheckpoint(dir: string, result: Awaited<ReturnType<typeof runStage2>>): Promise<void> {
  await saveHostModel(result.model, dir);
  if (result.moe) {
    const moeWeights = stateDict(result.moe, 'model.moe_model.');
    try {
      await writeSafetensorsFile(`${dir}/moe.safetensors`, moeWeights, { format: 'pt' });
    } finally {
      disposeStateDict(moeWeights);
    }
    await writeFile(`${dir}/moe-config.json`, `${JSON.stringify(result.moe.getConfig(), null, 2)}\n`);
  }
}
