/**
 * One task of the example per number of queries N, the unit of work run inline or on a worker
 * thread (one tfjs backend each): stage 1 (shared by the seeds), then per seed every experiment-A
 * variant from the same frozen stage-1 model, scored on the same held-out region questions; at the
 * primary N also experiment B (VPG-C trained on synthetic pairs, scored zero-shot) and, when asked,
 * the checkpoint (first seed's region-trained VPG-C).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type BackendRequest, initBackend, saveAdapterFiles } from '@mllm/core';
import { type HostMLLM, saveHostModel } from '@mllm/models';
import { toJsonLine } from '@mllm/train';
import type { AttachedVPGC, QFormerVPG } from '@mllm/vpgc';
import { writeFile } from 'node:fs/promises';
import { differenceGenerator, exampleTokenizer, regionQuestions, whatChangedQuestion, whichDiffersQuestion, type ChoiceQuestion } from './data.js';
import {
  PATCH_GRID, REGION_VARIANTS, TUNED_VPG_PARAMETERS, attentionReaderOf, runStage1, scoreChoices, trainRegionVariant, trainSdtVariant,
  type ChoiceResult, type ExampleConfig, type RegionVariant, type StepReport, type ZeroShotVariant,
} from './recipe.js';

/** The evaluation sets: experiment A's region questions; experiment B's held-out task and held-out samples of its training task. */
export const EVAL_SETS = {
  region: 'region questions on busy scenes (A), 6-way',
  'region-sparse': 'region questions on sparse scenes (premise check, frozen model only), 6-way',
  'what-changed': 'what changed (B, held-out task), 4-way',
  'which-differs': 'which differs (B, trained task, held-out samples), 3-way',
} as const;
export type EvalSet = keyof typeof EVAL_SETS;
export type Variant = RegionVariant | ZeroShotVariant;

export interface Outcome {
  seed: number;
  /** Learned queries of the VPG (image tokens per image). */
  queries: number;
  evalSet: EvalSet;
  variant: Variant;
  /** Trainable parameters of the variant's stage 2 (0 for `frozen`). */
  trainable: number;
  result: ChoiceResult;
}

export interface SeedTask {
  /** Seed of the shared stage 1 (one "pretrained MLLM" per N). */
  pretrainSeed: number;
  /** Seeds of the stage-2 variants (data order, module initialisation). */
  seeds: number[];
  queries: number;
  backend: BackendRequest;
  config: ExampleConfig;
  /** Where to write the checkpoint of this task (host + VPG + the region-trained VPG-C), or null. */
  checkpointDir: string | null;
}

/** Progress of a task: a training step of a stage (with its loss) or a scored question. */
export type SeedProgress = { kind: 'step'; stage: string; loss: number; lr: number } | { kind: 'question'; stage: string };

export interface SeedResult {
  queries: number;
  backend: string;
  outcomes: Outcome[];
  /** JSON lines (training steps and evaluation results). */
  metrics: string[];
  seconds: { stage1: number; stage2: number; scoring: number };
}

/** Held-out questions come from generator seeds no training run uses (the same questions for every seed and variant: paired). */
export const EVAL_SEED = 900_001;

export function taskLabel(task: Pick<SeedTask, 'queries'>): string {
  return `N=${task.queries}`;
}

const backendsReady = new Map<string, Promise<{ backend: string }>>();

export async function runSeed(task: SeedTask, onProgress: (p: SeedProgress) => void): Promise<SeedResult> {
  if (!backendsReady.has(task.backend)) backendsReady.set(task.backend, initBackend(task.backend, { fastCpuKernels: true })); // the example's own process
  const { backend } = await backendsReady.get(task.backend)!;
  const { queries, config } = task;
  const tokenizer = exampleTokenizer();
  const metrics: string[] = [];
  const outcomes: Outcome[] = [];
  const seconds = { stage1: 0, stage2: 0, scoring: 0 };
  const timed = async <T>(key: keyof typeof seconds, f: () => Promise<T> | T): Promise<T> => {
    const t = performance.now();
    try {
      return await f();
    } finally {
      seconds[key] += (performance.now() - t) / 1000;
    }
  };
  const onStep = (seed: number | null, stage: string) => (report: StepReport) => {
    metrics.push(toJsonLine({ kind: 'step', seed, queries, stage, ...report }));
    onProgress({ kind: 'step', stage: seed === null ? stage : `seed ${seed} ${stage}`, loss: report.loss, lr: report.lr });
  };

  // Stage 1 once per N (the shared "pretrained MLLM", seed `pretrainSeed`); the seeds are those of stage 2 (data order, module init).
  const { model, vpg } = await timed('stage1', () => runStage1(task.pretrainSeed, queries, tokenizer, config, onStep(null, 'stage 1')));
  try {
    const score = (seed: number, evalSet: EvalSet, variant: Variant, trainable: number, questions: ChoiceQuestion[]) =>
      timed('scoring', () => {
        const result = scoreChoices(model, questions, () => onProgress({ kind: 'question', stage: `seed ${seed} score ${variant} ${evalSet}` }));
        outcomes.push({ seed, queries, evalSet, variant, trainable, result });
        metrics.push(toJsonLine({ kind: 'eval', seed, queries, evalSet, variant, trainable, ...result }));
      });
    const region = regionQuestions(EVAL_SEED, config.regionQuestions); // the same for every seed, N and variant
    const frozenScore = (evalSet: EvalSet, questions: ChoiceQuestion[]) =>
      timed('scoring', () => {
        const result = scoreChoices(model, questions, () => onProgress({ kind: 'question', stage: `score frozen ${evalSet}` }));
        metrics.push(toJsonLine({ kind: 'eval', seed: null, queries, evalSet, variant: 'frozen', trainable: 0, ...result }));
        return result;
      });
    const frozenRegion = await frozenScore('region', region);
    // Premise check: the same questions' format on sparse scenes (one object), where the fixed queries suffice.
    const frozenSparse = await frozenScore('region-sparse', regionQuestions(EVAL_SEED + 2, config.regionQuestions, false));
    const primary = queries === config.primaryQueries;
    let zeroShot: Record<'what-changed' | 'which-differs', { questions: ChoiceQuestion[]; frozen: ChoiceResult }> | null = null;
    if (primary) {
      // The edited object is the one this host's frozen VPG attends to least (the generator's rule).
      const reader = attentionReaderOf(model, vpg);
      const sets = {
        'what-changed': differenceGenerator(EVAL_SEED, 'what-changed', reader, PATCH_GRID)
          .samples(0, config.zeroShotQuestions)
          .map((s, i) => whatChangedQuestion(s, EVAL_SEED + i)),
        'which-differs': differenceGenerator(EVAL_SEED + 1, 'which-differs', reader, PATCH_GRID)
          .samples(0, config.zeroShotQuestions)
          .map(whichDiffersQuestion),
      };
      zeroShot = {
        'what-changed': { questions: sets['what-changed'], frozen: await frozenScore('what-changed', sets['what-changed']) },
        'which-differs': { questions: sets['which-differs'], frozen: await frozenScore('which-differs', sets['which-differs']) },
      };
    }
    // tuned-vpg changes the host's VPG: its tensors are restored after every seed.
    const snapshot = snapshotOf(model, TUNED_VPG_PARAMETERS);
    try {
      for (const seed of task.seeds) {
        // The frozen model is deterministic: its scores are the same for every seed (recorded per seed for the paired analysis).
        outcomes.push({ seed, queries, evalSet: 'region', variant: 'frozen', trainable: 0, result: frozenRegion });
        outcomes.push({ seed, queries, evalSet: 'region-sparse', variant: 'frozen', trainable: 0, result: frozenSparse });
        if (zeroShot) {
          for (const set of ['what-changed', 'which-differs'] as const) outcomes.push({ seed, queries, evalSet: set, variant: 'frozen', trainable: 0, result: zeroShot[set].frozen });
          for (const guidance of [true, false]) {
            const variant: ZeroShotVariant = guidance ? 'sdt-vpgc' : 'sdt-vpgc-noguide';
            const { attached, trainable } = await timed('stage2', () => trainSdtVariant(model, vpg, guidance, seed, tokenizer, config, onStep(seed, `${variant} stage 2`)));
            try {
              for (const set of ['what-changed', 'which-differs'] as const) await score(seed, set, variant, trainable, zeroShot[set].questions);
            } finally {
              attached.remove(); // back to the frozen stage-1 model
              attached.module.dispose();
            }
          }
        }
        for (const variant of REGION_VARIANTS.filter((v): v is Exclude<RegionVariant, 'frozen'> => v !== 'frozen')) {
          const { attached, trainable } = await timed('stage2', () => trainRegionVariant(model, variant, seed, tokenizer, config, onStep(seed, `${variant} stage 2`)));
          try {
            await score(seed, 'region', variant, trainable, region);
            if (attached && variant === 'vpgc' && task.checkpointDir && seed === task.seeds[0]) await saveCheckpoint(task.checkpointDir, model, attached);
          } finally {
            if (attached) {
              attached.remove();
              attached.module.dispose();
            }
          }
          if (variant === 'tuned-vpg') restore(model, snapshot);
        }
      }
    } finally {
      tf.dispose([...snapshot.values()]);
    }
  } finally {
    model.dispose();
  }
  return { queries, backend, outcomes, metrics, seconds };
}

/** Copies of the parameters matched by `prefixes` (restored with `restore`). */
function snapshotOf(model: HostMLLM, prefixes: string[]): Map<string, tf.Tensor> {
  const copies = new Map<string, tf.Tensor>();
  for (const [name, p] of model.namedParameters()) if (prefixes.some((prefix) => name.startsWith(prefix))) copies.set(name, tf.clone(p.variable.read()));
  return copies;
}

function restore(model: HostMLLM, snapshot: Map<string, tf.Tensor>): void {
  for (const [name, p] of model.namedParameters()) {
    const copy = snapshot.get(name);
    if (copy) p.variable.write(copy);
  }
}

/**
 * `checkpoint/`: the host with its Q-Former VPG (`saveHostModel`; config.json marks the custom projector,
 * so `loadHostModel(dir, { projector: new QFormerVPG(<vpg-config.json>) })` restores it) and the VPG-C
 * adapter trained on region questions (`saveAdapterFiles` → `checkpoint/vpgc-adapter/`;
 * `loadAdapterFiles(restoredHost, dir)` re-attaches it).
 */
async function saveCheckpoint(dir: string, model: HostMLLM, attached: AttachedVPGC): Promise<void> {
  await saveHostModel(model, dir, { includeModules: false }); // the base; VPG-C goes to its adapter directory
  const { qformer, numQueryTokens, llmHiddenSize, lnVision, lnVisionEps } = (model.projector as QFormerVPG).getConfig() as Record<string, unknown>;
  await writeFile(`${dir}/vpg-config.json`, `${JSON.stringify({ qformer, numQueryTokens, llmHiddenSize, lnVision, lnVisionEps }, null, 2)}\n`);
  await saveAdapterFiles(attached, `${dir}/vpgc-adapter`); // adapter_config.json + adapter_model.safetensors
}
