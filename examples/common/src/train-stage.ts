/**
 * One training stage of an example, the way all examples run it: apply the stage's freezing
 * (everything but `trainable` frozen), AdamW without weight decay (optional parameter groups),
 * cosine schedule with 5 % warmup, gradient clipping at 1.0, fresh batches from a seeded RNG
 * (each disposed after its step), metrics reported per step.
 */
import { createRng } from '@mllm/core';
import { disposeBatch, type HostMLLM, type MultimodalBatch } from '@mllm/models';
import { AdamW, Trainer, applyTrainingStage, cosineScheduleWithWarmup, type ParameterSelector, type StepMetrics } from '@mllm/train';

export interface TrainStageOptions {
  model: HostMLLM;
  stageName: string;
  trainable: ParameterSelector[];
  frozen?: ParameterSelector[];
  steps: number;
  lr: number;
  /** Parameter groups with their own learning rate (e.g. the MoE). */
  groups?: Array<{ name: string; params: ParameterSelector[]; lr: number }>;
  /** Seeds the batch RNG and the trainer. */
  seed: number;
  /** A fresh batch (the caller's data); disposed after its step. */
  makeBatch: (rng: () => number) => MultimodalBatch;
  onStep: (metrics: StepMetrics) => void;
}

export async function trainStage(options: TrainStageOptions): Promise<void> {
  if (options.steps <= 0) return;
  const { model, steps } = options;
  applyTrainingStage(model, { name: options.stageName, trainable: options.trainable, frozen: options.frozen });
  const optimizer = new AdamW(model, { lr: options.lr, weightDecay: 0, groups: options.groups });
  const schedule = cosineScheduleWithWarmup({ warmupSteps: Math.max(1, Math.round(steps * 0.05)), totalSteps: steps });
  const trainer = new Trainer({ model, optimizer, schedule, maxGradNorm: 1.0, rng: options.seed, progress: false });
  const rng = createRng(options.seed);
  let current = null as MultimodalBatch | null;
  try {
    await trainer.fit({
      steps,
      batches: () => {
        if (current) disposeBatch(current);
        current = options.makeBatch(rng);
        return current;
      },
      lossFn: (batch) => model.loss(batch),
      onStep: (metrics) => options.onStep(metrics),
    });
  } finally {
    if (current) disposeBatch(current);
    optimizer.dispose();
  }
}
