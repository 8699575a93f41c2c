/**
 * Learning-rate schedules as multipliers of each parameter group's base learning rate, with the
 * semantics of Hugging Face `transformers` schedules on a PyTorch `LambdaLR`: the update number
 * `k` (0-based: the number of optimizer steps already taken) uses `lr = baseLr · factor(k)`.
 * So with warmup the very first update uses factor 0, exactly like the HF Trainer.
 */

export type LrScheduleConfig =
  | { type: 'constant'; warmupSteps: number }
  | { type: 'cosine'; warmupSteps: number; totalSteps: number; numCycles: number; minLrRatio: number };

export interface LrSchedule {
  /** Multiplier of the base learning rate for update `step` (0-based). */
  factor(step: number): number;
  /** JSON-serializable description (saved in checkpoints; `scheduleFromConfig` rebuilds it). */
  readonly config: LrScheduleConfig;
}

function assertNonNegativeInt(owner: string, name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new Error(`${owner}: ${name} must be a non-negative integer, got ${String(value)}`);
  }
}

function assertStep(owner: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`${owner}: step must be a non-negative integer, got ${step}`);
}

/** Linear warmup factor `k / max(1, W)` for `k < W`. */
function warmupFactor(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

export interface ConstantScheduleOptions {
  /** Linear warmup from 0 over this many updates (default 0: HF `get_constant_schedule`). */
  warmupSteps?: number;
}

/**
 * Constant schedule (HF `get_constant_schedule` / `get_constant_schedule_with_warmup`):
 * `factor(k) = k < W ? k / max(1, W) : 1`.
 */
export function constantSchedule(options: ConstantScheduleOptions = {}): LrSchedule {
  const warmupSteps = options.warmupSteps ?? 0;
  assertNonNegativeInt('constantSchedule', 'warmupSteps', warmupSteps);
  return {
    config: { type: 'constant', warmupSteps },
    factor(step: number): number {
      assertStep('constantSchedule', step);
      return step < warmupSteps ? warmupFactor(step, warmupSteps) : 1;
    },
  };
}

export interface CosineScheduleOptions {
  /** Updates of linear warmup from 0 to 1. */
  warmupSteps: number;
  /** Total number of updates of the run (the cosine reaches its end here). */
  totalSteps: number;
  /** Number of cosine waves over the decay (default 0.5: one half-wave from 1 to 0). */
  numCycles?: number;
  /** Floor as a fraction of the base lr (default 0; HF `get_cosine_with_min_lr_schedule_with_warmup`'s `min_lr_rate`). */
  minLrRatio?: number;
}

/**
 * Cosine decay after linear warmup (HF `get_cosine_schedule_with_warmup`, and with `minLrRatio`
 * `get_cosine_with_min_lr_schedule_with_warmup`):
 *
 * - `k < W`: `k / max(1, W)`
 * - else, with `p = (k − W) / max(1, S − W)`:
 *   `c = ½·(1 + cos(π · 2·numCycles · p))`, `factor = max(0, c·(1 − r) + r)`.
 */
export function cosineScheduleWithWarmup(options: CosineScheduleOptions): LrSchedule {
  const { warmupSteps, totalSteps } = options;
  const numCycles = options.numCycles ?? 0.5;
  const minLrRatio = options.minLrRatio ?? 0;
  assertNonNegativeInt('cosineScheduleWithWarmup', 'warmupSteps', warmupSteps);
  assertNonNegativeInt('cosineScheduleWithWarmup', 'totalSteps', totalSteps);
  if (!Number.isFinite(numCycles) || numCycles <= 0) {
    throw new Error(`cosineScheduleWithWarmup: numCycles must be a positive number, got ${numCycles}`);
  }
  if (!Number.isFinite(minLrRatio) || minLrRatio < 0 || minLrRatio > 1) {
    throw new Error(`cosineScheduleWithWarmup: minLrRatio must be in [0, 1], got ${minLrRatio}`);
  }
  return {
    config: { type: 'cosine', warmupSteps, totalSteps, numCycles, minLrRatio },
    factor(step: number): number {
      assertStep('cosineScheduleWithWarmup', step);
      if (step < warmupSteps) return warmupFactor(step, warmupSteps);
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      const cosine = 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress));
      return Math.max(0, cosine * (1 - minLrRatio) + minLrRatio);
    },
  };
}

/** HF `TrainingArguments.get_warmup_steps`: `ceil(totalSteps · warmupRatio)`. */
export function warmupStepsFromRatio(warmupRatio: number, totalSteps: number): number {
  if (!Number.isFinite(warmupRatio) || warmupRatio < 0 || warmupRatio > 1) {
    throw new Error(`warmupStepsFromRatio: warmupRatio must be in [0, 1], got ${warmupRatio}`);
  }
  assertNonNegativeInt('warmupStepsFromRatio', 'totalSteps', totalSteps);
  return Math.ceil(totalSteps * warmupRatio);
}

/** Rebuild a schedule from its `config` (e.g. read from a checkpoint). */
export function scheduleFromConfig(config: LrScheduleConfig): LrSchedule {
  switch (config?.type) {
    case 'constant':
      return constantSchedule({ warmupSteps: config.warmupSteps });
    case 'cosine':
      return cosineScheduleWithWarmup(config);
    default:
      throw new Error(`scheduleFromConfig: config.type must be 'constant' or 'cosine', got ${JSON.stringify((config as { type?: unknown })?.type)}`);
  }
}
