/**
 * The units of work of the example (run in worker threads, one tfjs backend each, or inline):
 * `stage1` for a seed writes its weights to disk; `stage2` for a (seed, recipe) loads them,
 * trains, scores the held-out MMMB file with @mllm/eval and returns the report.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, readSafetensorsFile, stateDict, disposeStateDict, writeSafetensorsFile, type BackendRequest } from '@mllm/core';
import { saveHostModel } from '@mllm/models';
import { ANSWER_INSTRUCTIONS, evaluate, type Report } from '@mllm/eval';
import { exampleTokenizer } from './dataset.js';
import { evalModelOf, runStage1, runStage2, type ExampleConfig, type RecipeName, type StepReport } from './recipe.js';
import { LANGUAGES, type Language } from './questions.js';

export type Task =
  | { kind: 'stage1'; seed: number }
  | { kind: 'stage2'; seed: number; recipe: RecipeName; saveCheckpoint: boolean };

export interface TaskContext {
  backend: BackendRequest;
  config: ExampleConfig;
  outDir: string;
  heldOutPath: string;
  onStep: (task: Task, report: StepReport) => void;
}

export interface Stage2Outcome {
  seed: number;
  recipe: RecipeName;
  report: Report;
  /** Mean routing weight per expert for each language (Parrot only). */
  routingByLanguage: Partial<Record<Language, number[]>>;
}

export function taskLabel(task: Task): string {
  return task.kind === 'stage1' ? `stage 1 (seed ${task.seed})` : `seed ${task.seed} ${task.recipe}`;
}

/** Where the stage-1 ("pretrained") weights are kept; reused by later runs with the same settings. */
export const stage1Path = (outDir: string) => `${outDir}/stage1.safetensors`;

let backendReady: Promise<unknown> | null = null;

/** Run one task on this thread's tfjs (initialising the backend once). */
export async function runTask(task: Task, ctx: TaskContext): Promise<Stage2Outcome | null> {
  backendReady ??= initBackend(ctx.backend, { fastCpuKernels: true }); // this process is the example's own
  await backendReady;
  const tokenizer = exampleTokenizer();
  const onStep = (r: StepReport) => ctx.onStep(task, r);
  if (task.kind === 'stage1') {
    const weights = await runStage1(task.seed, tokenizer, ctx.config, onStep);
    try {
      await writeSafetensorsFile(stage1Path(ctx.outDir), weights, { stage1: stage1Key(task.seed, ctx.config) });
    } finally {
      disposeStateDict(weights);
    }
    return null;
  }
  const { tensors: stage1 } = await readSafetensorsFile(stage1Path(ctx.outDir));
  const result = await runStage2(task.recipe, task.seed, stage1, tokenizer, ctx.config, onStep).finally(() => tf.dispose([...stage1.values()]));
  try {
    const base = evalModelOf(result.model);
    const model = {
      ...base,
      generate(prompt: string, images: readonly tf.Tensor3D[]) {
        result.setCurrentLanguage(languageOfPrompt(prompt));
        try {
          return base.generate(prompt, images);
        } finally {
          result.setCurrentLanguage(undefined);
        }
      },
    };
    const evaluation = await evaluate({ model, datasets: [{ source: ctx.heldOutPath, name: 'mmmb-mini' }], circular: false });
    const routingByLanguage: Stage2Outcome['routingByLanguage'] = {};
    for (const [language, rows] of result.routing) {
      if (!rows.length) continue;
      routingByLanguage[language] = rows[0].map((_, e) => rows.reduce((s, r) => s + r[e], 0) / rows.length);
    }
    if (task.saveCheckpoint) await saveCheckpoint(ctx.outDir, result);
    return { seed: task.seed, recipe: task.recipe, report: evaluation.report, routingByLanguage };
  } finally {
    result.model.dispose();
    result.moe?.dispose();
  }
}

/** What identifies a stage-1 result: its seed and every setting that shapes it. */
export function stage1Key(seed: number, config: ExampleConfig): string {
  const { stage2Steps: _s, stage2Lr: _l, moeLr: _m, numExperts: _e, ...shaping } = config;
  return JSON.stringify({ seed, ...shaping });
}

/** True when `outDir` already holds stage-1 weights made with these settings. */
export async function hasStage1(outDir: string, seed: number, config: ExampleConfig): Promise<boolean> {
  try {
    const { metadata, tensors } = await readSafetensorsFile(stage1Path(outDir), { filter: () => false });
    tf.dispose([...tensors.values()]);
    return metadata?.stage1 === stage1Key(seed, config);
  } catch {
    return false;
  }
}

/** The language whose localized answer instruction ends the prompt. */
export function languageOfPrompt(prompt: string): Language | undefined {
  return LANGUAGES.find((l) => prompt.trimEnd().endsWith(ANSWER_INSTRUCTIONS[l]));
}

async function saveCheckpoint(outDir: string, result: Awaited<ReturnType<typeof runStage2>>): Promise<void> {
  const dir = `${outDir}/checkpoint`;
  await saveHostModel(result.model, dir);
  if (result.moe) {
    const moeWeights = stateDict(result.moe, 'model.moe_model.');
    try {
      await writeSafetensorsFile(`${dir}/moe.safetensors`, moeWeights, { format: 'pt' });
    } finally {
      disposeStateDict(moeWeights);
    }
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${dir}/moe-config.json`, `${JSON.stringify(result.moe.getConfig(), null, 2)}\n`);
  }
}
