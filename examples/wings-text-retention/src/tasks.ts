/**
 * The units of work of the example (run on worker threads, one tfjs backend each, or inline):
 * `pretrain` for a seed writes the text-pretrained weights to disk and scores them; `finetune`
 * for a (seed, recipe) loads them, fine-tunes on image QA and scores both held-out sets.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeStateDict, initBackend, readSafetensorsFile, writeSafetensorsFile, type BackendRequest } from '@mllm/core';
import { saveHostModel } from '@mllm/models';
import { exampleTokenizer, type Item } from './data.js';
import {
  heldOutImagesFor, heldOutTextFor, letterAccuracy, routerBlend, runFinetune, runPretrain,
  type ExampleConfig, type RecipeName, type RouterBlend, type StepReport,
} from './recipe.js';

export type Task =
  | { kind: 'pretrain'; seed: number }
  | { kind: 'finetune'; seed: number; recipe: RecipeName; saveCheckpoint: boolean; routerExample: boolean };

export interface TaskContext {
  backend: BackendRequest;
  config: ExampleConfig;
  outDir: string;
  onStep: (task: Task, report: StepReport) => void;
}

/** Held-out accuracies of one model (fractions in [0, 1]). */
export interface Outcome {
  seed: number;
  recipe: 'pretrained' | RecipeName;
  /** The tfjs backend the task ran on. */
  backend: string;
  textAccuracy: number;
  imageAccuracy: number;
  /** Router blend of one image and one text prompt (stage-2 Wings, when asked). */
  routerExamples?: RouterBlend[];
  /** Seconds the task took (training and scoring). */
  seconds: number;
}

export function taskLabel(task: Task): string {
  return task.kind === 'pretrain' ? `seed ${task.seed} pretrain` : `seed ${task.seed} ${task.recipe}`;
}

const pretrainedPath = (outDir: string, seed: number) => `${outDir}/pretrained-seed${seed}.safetensors`;

let backendReady: Promise<unknown> | null = null;

/** Run one task on this thread's tfjs (initialising the backend once). */
export async function runTask(task: Task, ctx: TaskContext): Promise<Outcome> {
  backendReady ??= initBackend(ctx.backend, { fastCpuKernels: true }); // this process is the example's own
  await backendReady;
  const started = performance.now();
  const tokenizer = exampleTokenizer();
  const onStep = (r: StepReport) => ctx.onStep(task, r);
  const images = heldOutImagesFor(ctx.config);
  if (task.kind === 'pretrain') {
    const { model, weights, textAccuracy } = await runPretrain(task.seed, tokenizer, ctx.config, onStep);
    try {
      await writeSafetensorsFile(pretrainedPath(ctx.outDir, task.seed), weights);
      // The text-only model on image questions (untrained projector): the "before" row of the image column.
      const imageAccuracy = letterAccuracy(model, tokenizer, images);
      return { seed: task.seed, recipe: 'pretrained', backend: tf.getBackend(), textAccuracy, imageAccuracy, seconds: (performance.now() - started) / 1000 };
    } finally {
      disposeStateDict(weights);
      model.dispose();
    }
  }
  const { tensors: pretrained } = await readSafetensorsFile(pretrainedPath(ctx.outDir, task.seed));
  const result = await runFinetune(task.recipe, task.seed, pretrained, tokenizer, ctx.config, onStep).finally(() => tf.dispose([...pretrained.values()]));
  try {
    const outcome: Outcome = {
      seed: task.seed,
      recipe: task.recipe,
      backend: tf.getBackend(),
      textAccuracy: letterAccuracy(result.model, tokenizer, heldOutTextFor(ctx.config)),
      imageAccuracy: letterAccuracy(result.model, tokenizer, images),
      seconds: 0,
    };
    if (task.routerExample && result.wings) {
      const textExample: Item = heldOutTextFor(ctx.config)[0];
      outcome.routerExamples = [routerBlend(result.model, result.wings, tokenizer, images[0]), routerBlend(result.model, result.wings, tokenizer, textExample)];
    }
    if (task.saveCheckpoint) {
      await saveHostModel(result.model, `${ctx.outDir}/checkpoint/host`);
      if (result.wings) await result.wings.saveAdapter(`${ctx.outDir}/checkpoint/wings-adapter`);
    }
    outcome.seconds = (performance.now() - started) / 1000;
    return outcome;
  } finally {
    result.model.dispose();
    result.wings?.adapter.dispose();
  }
}
