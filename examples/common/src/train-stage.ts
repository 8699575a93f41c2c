/**
 * One training stage of an example, the way all examples run it (the one `train()` of the examples):
 * apply the stage's freezing (everything but `trainable` frozen; none without `trainable`), AdamW
 * without weight decay (optional parameter groups),
 * cosine schedule with 5 % warmup, gradient clipping at 1.0, fresh batches from a seeded RNG
 * (each disposed after its step), metrics reported per step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, type Module } from '@mllm/core';
import { disposeBatch, type HostMLLM, type MultimodalBatch } from '@mllm/models';
import { AdamW, Trainer, applyTrainingStage, cosineScheduleWithWarmup, type ParameterSelector, type StepMetrics } from '@mllm/train';

/** What an example reports per step (the trainer's metrics the examples show and log). */
export interface StepReport {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  stepTime: number;
}

export interface TrainStageOptions {
  model: HostMLLM;
  stageName?: string;
  /**
   * Trained parameters (`applyTrainingStage`: everything else frozen). Absent: the model's trainable
   * flags stay as they are (e.g. a module's attach already froze the host).
   */
  trainable?: ParameterSelector[];
  frozen?: ParameterSelector[];
  steps: number;
  lr: number;
  /** Parameter groups with their own learning rate (e.g. the MoE). */
  groups?: Array<{ name: string; params: ParameterSelector[]; lr: number }>;
  /** Seeds the batch RNG and the trainer. */
  seed: number;
  /** A fresh batch for `step` (the caller's data, drawn from the stage's seeded `rng`); disposed after its step. */
  makeBatch: (rng: () => number, step: number) => MultimodalBatch;
  onStep: (report: StepReport) => void;
}

export async function trainStage(options: TrainStageOptions): Promise<void> {
  if (options.steps <= 0) return;
  const { model, steps } = options;
  if (options.trainable) applyTrainingStage(model, { name: options.stageName ?? 'train', trainable: options.trainable, frozen: options.frozen });
  const optimizer = new AdamW(model, { lr: options.lr, weightDecay: 0, groups: options.groups });
  const schedule = cosineScheduleWithWarmup({ warmupSteps: Math.max(1, Math.round(steps * 0.05)), totalSteps: steps });
  const trainer = new Trainer({ model, optimizer, schedule, maxGradNorm: 1.0, rng: options.seed, progress: false });
  const rng = createRng(options.seed);
  let current = null as MultimodalBatch | null;
  try {
    await trainer.fit({
      steps,
      batches: (step: number) => {
        if (current) disposeBatch(current);
        current = options.makeBatch(rng, step);
        return current;
      },
      lossFn: (batch) => model.loss(batch),
      onStep: (m: StepMetrics) => options.onStep({ step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, stepTime: m.stepTime }),
    });
  } finally {
    if (current) disposeBatch(current);
    optimizer.dispose();
  }
}

/**
 * Writes 0 into every parameter of `module` (the ablations that switch a path off: Parrot's router at zero
 * logits = uniform weights, VPG-C's guidance projection at zero). Freezing it stays the caller's: through
 * `trainStage`'s `frozen` when the stage applies `trainable`, else the parameter's `trainable` flag.
 */
export function zeroParameters(module: Module): void {
  for (const [, p] of module.namedParameters()) {
    const zeros = tf.zeros(p.variable.shape as number[]);
    p.variable.write(zeros);
    zeros.dispose();
  }
}
