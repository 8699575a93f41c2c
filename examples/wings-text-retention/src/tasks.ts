/**
 * The units of work of the example (run on worker threads, one tfjs backend each, or inline):
 * `pretrain` for a seed writes the text-pretrained weights to the run's scratch directory and scores
 * them; `finetune` for a (seed, recipe, LLM learning-rate ratio) loads them, fine-tunes on image QA
 * and scores both held-out sets question by question (the same questions for every run: paired).
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeStateDict, initBackend, readSafetensorsFile, saveAdapterFiles, writeSafetensorsFile, type BackendRequest } from '@mllm/core';
import { saveHostModel } from '@mllm/models';
import { exampleTokenizer } from './data.js';
import {
  heldOutImagesFor, heldOutTextFor, letterScores, routerBlend, routerSummary, runFinetune, runLabel, runPretrain,
  type ExampleConfig, type RecipeName, type RouterBlend, type RouterSummary, type RunSpec, type StepReport,
} from './recipe.js';

export type Task =
  | { kind: 'pretrain'; seed: number }
  | { kind: 'finetune'; seed: number; run: RunSpec; checkpointDir: string | null; routerExample: boolean };

export interface TaskContext {
  backend: BackendRequest;
  config: ExampleConfig;
  /** Where the pretrained weights of each seed are passed from the pretrain task to the finetune tasks. */
  scratchDir: string;
  onStep: (task: Task, report: StepReport) => void;
}

/** Held-out scores of one model: `text[q]`, `image[q]` = 1 if question q was answered right, else 0. */
export interface Outcome {
  seed: number;
  recipe: 'pretrained' | RecipeName;
  /** LLM learning rate ÷ P in stage 2 (null for the pretrained model). */
  ratio: number | null;
  /** The tfjs backend the task ran on. */
  backend: string;
  text: number[];
  image: number[];
  textAccuracy: number;
  imageAccuracy: number;
  /** Router blend per token of one image and one text prompt (stage-2 Wings, when asked). */
  routerExamples?: RouterBlend[];
  /** Mean router blend over held-out prompts (every Wings run). */
  router?: RouterSummary;
  /** Seconds the task took (training and scoring). */
  seconds: number;
}

export function taskLabel(task: Task): string {
  return task.kind === 'pretrain' ? `seed ${task.seed} pretrain` : `seed ${task.seed} ${runLabel(task.run)}`;
}

export const pretrainedPath = (dir: string, seed: number) => `${dir}/pretrained-seed${seed}.safetensors`;

const mean = (scores: number[]) => scores.reduce((a, b) => a + b, 0) / scores.length;

let backendReady: Promise<unknown> | null = null;

/** Run one task on this thread's tfjs (initialising the backend once). */
export async function runTask(task: Task, ctx: TaskContext): Promise<Outcome> {
  backendReady ??= initBackend(ctx.backend, { fastCpuKernels: true }); // this process is the example's own
  await backendReady;
  const started = performance.now();
  const tokenizer = exampleTokenizer();
  const onStep = (r: StepReport) => ctx.onStep(task, r);
  const texts = heldOutTextFor(ctx.config);
  const images = heldOutImagesFor(ctx.config);
  const score = (model: Parameters<typeof letterScores>[0]) => {
    const text = letterScores(model, tokenizer, texts);
    const image = letterScores(model, tokenizer, images);
    return { text, image, textAccuracy: mean(text), imageAccuracy: mean(image) };
  };
  if (task.kind === 'pretrain') {
    const { model, weights } = await runPretrain(task.seed, tokenizer, ctx.config, onStep);
    try {
      await writeSafetensorsFile(pretrainedPath(ctx.scratchDir, task.seed), weights);
      // The image column of this row is the text-only model with its untrained projector (the "before").
      return { seed: task.seed, recipe: 'pretrained', ratio: null, backend: tf.getBackend(), ...score(model), seconds: (performance.now() - started) / 1000 };
    } finally {
      disposeStateDict(weights);
      model.dispose();
    }
  }
  const { tensors: pretrained } = await readSafetensorsFile(pretrainedPath(ctx.scratchDir, task.seed));
  const result = await runFinetune(task.run, task.seed, pretrained, tokenizer, ctx.config, onStep).finally(() => disposeStateDict(pretrained));
  try {
    const outcome: Outcome = { seed: task.seed, recipe: task.run.recipe, ratio: task.run.ratio, backend: tf.getBackend(), ...score(result.model), seconds: 0 };
    if (result.wings) {
      outcome.router = routerSummary(result.model, result.wings, tokenizer, images.slice(0, ctx.config.routerPrompts), texts.slice(0, ctx.config.routerPrompts));
      if (task.routerExample) {
        outcome.routerExamples = [routerBlend(result.model, result.wings, tokenizer, images[0]), routerBlend(result.model, result.wings, tokenizer, texts[0])];
      }
    }
    if (task.checkpointDir) {
      // The adapter (reference names, core's adapter format), then the host without it (its own, tuned weights).
      if (result.wings) {
        await saveAdapterFiles(result.wings, `${task.checkpointDir}/wings-adapter`);
        result.wings.remove();
      }
      await saveHostModel(result.model, `${task.checkpointDir}/host`);
    }
    outcome.seconds = (performance.now() - started) / 1000;
    return outcome;
  } finally {
    result.model.dispose();
    result.wings?.module.dispose();
  }
}
