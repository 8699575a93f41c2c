/**
 * One seed of the example, the unit of work run inline or on a worker thread (one tfjs backend
 * each): stage 1, held-out questions, stage 2, scoring with VPG-C attached and removed, and (when
 * asked) the checkpoint.
 */
import { type BackendRequest, initBackend, saveAdapterFiles } from '@mllm/core';
import { type HostMLLM, saveHostModel } from '@mllm/models';
import { toJsonLine } from '@mllm/train';
import type { AttachedVPGC, QFormerVPG } from '@mllm/vpgc';
import { writeFile } from 'node:fs/promises';
import { differenceGenerator, exampleTokenizer, whatChangedQuestion, whichDiffersQuestion, type ChoiceQuestion } from './data.js';
import { PATCH_GRID, attentionReaderOf, runStage1, runStage2, scoreChoices, type ChoiceResult, type ExampleConfig } from './recipe.js';

/** The evaluation sets: the held-out task and held-out samples of the trained task. */
export const EVAL_SETS = {
  'what-changed': 'what changed (held-out task), 4-way',
  'which-differs': 'which differs (trained task, held-out samples), 3-way',
} as const;
export type EvalSet = keyof typeof EVAL_SETS;
export type Condition = 'without VPG-C' | 'with VPG-C';

export interface Outcome {
  seed: number;
  evalSet: EvalSet;
  condition: Condition;
  result: ChoiceResult;
}

export interface SeedTask {
  seed: number;
  backend: BackendRequest;
  config: ExampleConfig;
  outDir: string;
  saveCheckpoint: boolean;
}

/** Progress of a task: a training step (with its loss) or a scored question. */
export type SeedProgress = { kind: 'step'; loss: number; lr: number } | { kind: 'question' };

export interface SeedResult {
  seed: number;
  backend: string;
  outcomes: Outcome[];
  /** JSON lines (training steps and evaluation results). */
  metrics: string[];
  seconds: { stage1: number; stage2: number; scoring: number };
}

/** Held-out questions come from generator seeds no training run uses. */
export const EVAL_SEED = 900_001;

const backendsReady = new Map<string, Promise<{ backend: string }>>();

export async function runSeed(task: SeedTask, onProgress: (p: SeedProgress) => void): Promise<SeedResult> {
  if (!backendsReady.has(task.backend)) backendsReady.set(task.backend, initBackend(task.backend, { fastCpuKernels: true })); // the example's own process
  const { backend } = await backendsReady.get(task.backend)!;
  const { seed, config } = task;
  const tokenizer = exampleTokenizer();
  const metrics: string[] = [];
  const outcomes: Outcome[] = [];
  const seconds = { stage1: 0, stage2: 0, scoring: 0 };
  const onStep = (stage: string) => (report: { step: number; loss: number; lr: number; gradNorm: number; stepTime: number }) => {
    metrics.push(toJsonLine({ kind: 'step', seed, stage, ...report }));
    onProgress({ kind: 'step', loss: report.loss, lr: report.lr });
  };

  let t = performance.now();
  const { model, vpg } = await runStage1(seed, tokenizer, config, onStep('stage1'));
  try {
    seconds.stage1 = (performance.now() - t) / 1000;
    // The same held-out scenes for every seed; the edited object is the one this host's frozen VPG attends to least.
    const reader = attentionReaderOf(model, vpg);
    const questions: Record<EvalSet, ChoiceQuestion[]> = {
      'what-changed': differenceGenerator(EVAL_SEED, 'what-changed', reader, PATCH_GRID)
        .samples(0, config.evalQuestions)
        .map((s, i) => whatChangedQuestion(s, EVAL_SEED + i)),
      'which-differs': differenceGenerator(EVAL_SEED + 1, 'which-differs', reader, PATCH_GRID)
        .samples(0, config.evalQuestions)
        .map(whichDiffersQuestion),
    };

    t = performance.now();
    const attached = await runStage2(model, vpg, seed, tokenizer, config, onStep('stage2'));
    seconds.stage2 = (performance.now() - t) / 1000;

    t = performance.now();
    const score = (condition: Condition) => {
      for (const evalSet of Object.keys(EVAL_SETS) as EvalSet[]) {
        const result = scoreChoices(model, questions[evalSet], () => onProgress({ kind: 'question' }));
        outcomes.push({ seed, evalSet, condition, result });
        metrics.push(toJsonLine({ kind: 'eval', seed, evalSet, condition, ...result }));
      }
    };
    score('with VPG-C');
    if (task.saveCheckpoint) await saveCheckpoint(task.outDir, model, attached);
    attached.remove(); // the same frozen host, VPG-C detached
    score('without VPG-C');
    seconds.scoring = (performance.now() - t) / 1000;
    attached.module.dispose();
  } finally {
    model.dispose();
  }
  return { seed, backend, outcomes, metrics, seconds };
}

/**
 * `checkpoint/`: the host with its Q-Former VPG (`saveHostModel`; config.json marks the custom projector,
 * so `loadHostModel(dir, { projector: new QFormerVPG(<vpg-config.json>) })` restores it) and the VPG-C
 * adapter (`saveAdapterFiles` → `checkpoint/vpgc-adapter/`; `loadAdapterFiles(restoredHost, dir)` re-attaches it).
 */
async function saveCheckpoint(out: string, model: HostMLLM, attached: AttachedVPGC): Promise<void> {
  const dir = `${out}/checkpoint`;
  await saveHostModel(model, dir, { includeModules: false }); // the base; VPG-C goes to its adapter directory
  const { qformer, numQueryTokens, llmHiddenSize, lnVision, lnVisionEps } = (model.projector as QFormerVPG).getConfig() as Record<string, unknown>;
  await writeFile(`${dir}/vpg-config.json`, `${JSON.stringify({ qformer, numQueryTokens, llmHiddenSize, lnVision, lnVisionEps }, null, 2)}\n`);
  await saveAdapterFiles(attached, `${dir}/vpgc-adapter`); // adapter_config.json + adapter_model.safetensors
}
