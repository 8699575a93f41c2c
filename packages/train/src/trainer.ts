/**
 * `Trainer`: runs optimizer steps over a `Module`'s trainable parameters with a generic
 * `lossFn(batch) → tf.Scalar` (e.g. the host model's `model.loss(batch)`).
 *
 * One optimizer step (HF Trainer order):
 *
 *     for each of the N micro-batches:  grads += ∇(loss_i / N)     (N = gradientAccumulationSteps)
 *     norm = ‖grads‖₂ (global, pre-clip);  grads ← clip(grads, maxGradNorm)
 *     AdamW update with lr = group base lr · schedule.factor(stepsDone)
 *
 * The reported loss is Σ loss_i / N (mean over micro-batches). Gradients are taken with
 * `tf.variableGrads` over the trainable variables only, so frozen parameters never change.
 * Each micro-step runs inside `tf.tidy`: tensors the batch source creates when called are
 * disposed after the step; tensors it merely returns (created earlier) are left alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Module, SeededRandom } from '@mllm/core';
import type { AdamW, AdamWConfig } from './adamw.js';
import { saveCheckpoint } from './checkpoint.js';
import { clipGradNorm, globalGradNorm } from './clip-grad-norm.js';
import { constantSchedule, type LrSchedule, type LrScheduleConfig } from './lr-schedule.js';
import { MetricsLog } from './metrics-log.js';
import { ProgressBar, type ProgressOptions, type TextStream } from './progress.js';
import { applyTrainingStage, type TrainingStage } from './training-stage.js';

/** Per-step metrics (also the JSONL record). */
export interface StepMetrics {
  /** Optimizer steps completed, including this one (1-based). */
  step: number;
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Learning rate of the default group used for this update. */
  lr: number;
  /** Learning rates of the named groups that set their own lr. */
  lrs?: Record<string, number>;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Seconds since `fit` started. */
  time: number;
  /** Seconds this step took. */
  stepTime: number;
  /** Tokens in this step (when `FitOptions.tokens` is given). */
  tokens?: number;
  /** True when the update was skipped for a non-finite loss or gradient norm. */
  skipped?: boolean;
}

/**
 * Where batches come from: a function of (step, micro-batch index, data rng) — the reproducible
 * choice, as the rng state is saved in checkpoints — or an iterable/iterator (consumed in order).
 * Must be synchronous.
 */
export type BatchSource<B> = ((step: number, microStep: number, rng: SeededRandom) => B) | Iterable<B> | Iterator<B>;

export interface TrainerOptions {
  model: Module;
  optimizer: AdamW;
  /** Learning-rate multiplier schedule (default constant 1). */
  schedule?: LrSchedule;
  /** Clip the global gradient norm to this (default 1.0, the HF Trainer's); `null`: no clipping (the norm is still measured). */
  maxGradNorm?: number | null;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulationSteps?: number;
  /** Data-order random stream, or its seed (default seed 0). Its state is saved in checkpoints. */
  rng?: SeededRandom | number;
  /** A stage to apply to the model now (`applyTrainingStage`); its name goes into the trainer state. */
  stage?: TrainingStage;
  /** Progress output (default on: a redrawn line on a TTY, periodic lines otherwise); `false` for none. */
  progress?: boolean | ProgressOptions;
  /** Where to write one JSON line of `StepMetrics` per step. */
  metrics?: TextStream | MetricsLog;
  /** Non-finite loss or gradient norm: throw (default) or skip the update (the step still counts). */
  nonFinite?: 'error' | 'skip';
  /** Milliseconds clock (default `performance.now`). */
  clock?: () => number;
  /** Free-form run configuration saved in the trainer state. */
  config?: Record<string, unknown>;
}

export interface CheckpointSchedule {
  /**
   * Checkpoint directory, or one per step. Each save replaces the directory as a whole (see
   * `saveCheckpoint`), so it must hold nothing but the checkpoint: keep metrics files elsewhere.
   */
  dir: string | ((step: number) => string);
  /** Save after every this many steps (and after the last step of `fit`). */
  every: number;
  /** Model weights to save: all (default) or only the trainable ones. */
  modelWeights?: 'all' | 'trainable';
}

export interface FitOptions<B> {
  /** Train until this many optimizer steps are done in total (a resumed trainer continues from its step). */
  steps: number;
  batches: BatchSource<B>;
  lossFn: (batch: B) => tf.Scalar;
  /** Tokens in a batch (for tokens/s and the metrics). */
  tokens?: (batch: B) => number;
  /** Called after every step; return `false` to stop. */
  onStep?: (metrics: StepMetrics, trainer: Trainer) => void | boolean | Promise<void | boolean>;
  /** Save checkpoints periodically (Node.js). */
  checkpoint?: CheckpointSchedule;
}

/** What a checkpoint's `trainer_state.json` holds. */
export interface TrainerState {
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  /** `SeededRandom` state of the data order. */
  rngState: number;
  schedule: LrScheduleConfig;
  optimizer: AdamWConfig;
  gradientAccumulationSteps: number;
  maxGradNorm: number | null;
  stage: string | null;
  config: Record<string, unknown>;
  /** Metrics of the last completed step. */
  lastMetrics: StepMetrics | null;
}

function batchGetter<B>(source: BatchSource<B>, rng: SeededRandom): (step: number, micro: number) => B {
  const check = (value: B, step: number, micro: number): B => {
    if (value && typeof (value as { then?: unknown }).then === 'function') {
      throw new Error(`Trainer.fit: batches must be synchronous, got a Promise at step ${step} micro-batch ${micro}`);
    }
    return value;
  };
  if (typeof source === 'function') return (step, micro) => check(source(step, micro, rng), step, micro);
  const iterator: Iterator<B> | undefined =
    source && typeof (source as Iterable<B>)[Symbol.iterator] === 'function'
      ? (source as Iterable<B>)[Symbol.iterator]()
      : source && typeof (source as Iterator<B>).next === 'function'
        ? (source as Iterator<B>)
        : undefined;
  if (!iterator) throw new Error(`Trainer.fit: batches must be a function, an iterable or an iterator, got ${typeof source}`);
  return (step, micro) => {
    const result = iterator.next();
    if (result.done) throw new Error(`Trainer.fit: batches ran out at step ${step} micro-batch ${micro}`);
    return check(result.value, step, micro);
  };
}

export class Trainer {
  readonly model: Module;
  readonly optimizer: AdamW;
  readonly schedule: LrSchedule;
  readonly maxGradNorm: number | null;
  readonly gradientAccumulationSteps: number;
  readonly rng: SeededRandom;
  readonly stageName: string | null;
  readonly config: Record<string, unknown>;
  /** Optimizer steps completed. */
  step = 0;
  private lastMetrics: StepMetrics | null = null;
  private readonly progressOptions: ProgressOptions | null;
  private readonly metricsLog: MetricsLog | null;
  private readonly nonFinite: 'error' | 'skip';
  private readonly clock: () => number;

  constructor(options: TrainerOptions) {
    if (!options?.model) throw new Error('Trainer: options.model is required');
    if (!options.optimizer) throw new Error('Trainer: options.optimizer is required');
    if (options.optimizer.model !== options.model) throw new Error('Trainer: options.optimizer was built for a different model');
    this.model = options.model;
    this.optimizer = options.optimizer;
    this.schedule = options.schedule ?? constantSchedule();
    this.maxGradNorm = options.maxGradNorm === undefined ? 1.0 : options.maxGradNorm;
    if (this.maxGradNorm !== null && (typeof this.maxGradNorm !== 'number' || Number.isNaN(this.maxGradNorm) || this.maxGradNorm <= 0)) {
      throw new Error(`Trainer: maxGradNorm must be a number > 0 or null, got ${String(this.maxGradNorm)}`);
    }
    this.gradientAccumulationSteps = options.gradientAccumulationSteps ?? 1;
    if (!Number.isInteger(this.gradientAccumulationSteps) || this.gradientAccumulationSteps < 1) {
      throw new Error(`Trainer: gradientAccumulationSteps must be a positive integer, got ${String(this.gradientAccumulationSteps)}`);
    }
    this.rng = options.rng instanceof SeededRandom ? options.rng : new SeededRandom(options.rng ?? 0);
    if (options.stage) applyTrainingStage(this.model, options.stage);
    this.stageName = options.stage?.name ?? null;
    this.config = { ...(options.config ?? {}) };
    const progress = options.progress ?? true;
    this.progressOptions = progress === false ? null : progress === true ? {} : progress;
    this.metricsLog = options.metrics === undefined ? null : options.metrics instanceof MetricsLog ? options.metrics : new MetricsLog(options.metrics);
    this.nonFinite = options.nonFinite ?? 'error';
    if (this.nonFinite !== 'error' && this.nonFinite !== 'skip') throw new Error(`Trainer: nonFinite must be 'error' or 'skip', got ${String(this.nonFinite)}`);
    this.clock = options.clock ?? (() => performance.now());
  }

  /** The resumable state (JSON). */
  state(): TrainerState {
    return {
      version: 1,
      step: this.step,
      rngState: this.rng.getState(),
      schedule: this.schedule.config,
      optimizer: this.optimizer.config(),
      gradientAccumulationSteps: this.gradientAccumulationSteps,
      maxGradNorm: this.maxGradNorm,
      stage: this.stageName,
      config: this.config,
      lastMetrics: this.lastMetrics,
    };
  }

  /**
   * Continue from a saved state: step count and data rng. The schedule, accumulation and
   * clipping settings must equal this trainer's unless `allowConfigChange` (a resumed run with
   * different settings does not reproduce the uninterrupted one).
   */
  loadState(state: TrainerState, options: { allowConfigChange?: boolean } = {}): void {
    if (state?.version !== 1) throw new Error(`Trainer.loadState: state.version must be 1, got ${String(state?.version)}`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`Trainer.loadState: state.step must be an integer >= 0, got ${String(state.step)}`);
    if (!options.allowConfigChange) {
      const mine = { schedule: this.schedule.config, gradientAccumulationSteps: this.gradientAccumulationSteps, maxGradNorm: this.maxGradNorm };
      const theirs = { schedule: state.schedule, gradientAccumulationSteps: state.gradientAccumulationSteps, maxGradNorm: state.maxGradNorm };
      for (const key of Object.keys(mine) as Array<keyof typeof mine>) {
        if (JSON.stringify(mine[key]) !== JSON.stringify(theirs[key])) {
          throw new Error(`Trainer.loadState: ${key} differs: checkpoint ${JSON.stringify(theirs[key])}, trainer ${JSON.stringify(mine[key])} (pass allowConfigChange to accept)`);
        }
      }
    }
    this.rng.setState(state.rngState);
    this.step = state.step;
    this.lastMetrics = state.lastMetrics ?? null;
  }

  private trainableNamedVariables(): Array<[string, tf.Variable]> {
    const out = this.model
      .namedParameters()
      .filter(([, p]) => p.variable.trainable)
      .map(([name, p]) => [name, p.variable.read() as tf.Variable] as [string, tf.Variable]);
    if (out.length === 0) throw new Error(`Trainer: ${this.model.name} has no trainable parameters (check the training stage)`);
    return out;
  }

  /**
   * One optimizer step over `gradientAccumulationSteps` micro-batches from `nextBatch(micro)`.
   * Returns the step's metrics (time fields relative to `fitStart`).
   */
  async trainStep<B>(
    nextBatch: (microStep: number) => B,
    lossFn: (batch: B) => tf.Scalar,
    tokensOf?: (batch: B) => number,
    fitStart = this.clock(),
  ): Promise<StepMetrics> {
    const stepStart = this.clock();
    const factor = this.schedule.factor(this.step);
    const named = this.trainableNamedVariables();
    const variables = named.map(([, v]) => v);
    const nameOfVariable = new Map(named.map(([name, v]) => [v.name, name]));
    const N = this.gradientAccumulationSteps;
    const accumulated = new Map<string, tf.Tensor>();
    let lossSum: tf.Tensor | null = null;
    let tokens: number | undefined;
    const disposeAll = (...extra: Array<Map<string, tf.Tensor> | tf.Tensor | null>) => {
      for (const t of accumulated.values()) t.dispose();
      accumulated.clear();
      lossSum?.dispose();
      for (const e of extra) {
        if (e instanceof Map) for (const t of e.values()) t.dispose();
        else e?.dispose();
      }
    };
    try {
      for (let micro = 0; micro < N; micro++) {
        const { value, grads, batchTokens } = tf.tidy(() => {
          const batch = nextBatch(micro);
          const count = tokensOf ? tokensOf(batch) : undefined;
          const result = tf.variableGrads(() => {
            const loss = lossFn(batch);
            if (!(loss instanceof tf.Tensor) || loss.rank !== 0) {
              throw new Error(`Trainer: lossFn must return a scalar tensor, got ${loss instanceof tf.Tensor ? `shape [${loss.shape}]` : typeof loss}`);
            }
            return (N > 1 ? tf.div(loss, N) : loss) as tf.Scalar;
          }, variables);
          return { value: result.value, grads: result.grads, batchTokens: count };
        }) as unknown as { value: tf.Scalar; grads: tf.NamedTensorMap; batchTokens: number | undefined };
        if (batchTokens !== undefined) tokens = (tokens ?? 0) + batchTokens;
        const previousLoss: tf.Tensor | null = lossSum;
        lossSum = previousLoss ? tf.add(previousLoss, value) : value;
        if (previousLoss) {
          previousLoss.dispose();
          value.dispose();
        }
        for (const [variableName, grad] of Object.entries(grads)) {
          if (grad == null) continue;
          const name = nameOfVariable.get(variableName)!;
          const previous = accumulated.get(name);
          if (previous) {
            accumulated.set(name, tf.add(previous, grad));
            previous.dispose();
            grad.dispose();
          } else {
            accumulated.set(name, grad);
          }
        }
      }
    } catch (error) {
      disposeAll();
      throw error;
    }

    const clipped = this.maxGradNorm !== null ? clipGradNorm(accumulated, this.maxGradNorm) : { grads: accumulated, totalNorm: globalGradNorm(accumulated.values()) };
    const [lossData, normData] = await Promise.all([lossSum!.data(), clipped.totalNorm.data()]);
    const loss = lossData[0];
    const gradNorm = normData[0];
    const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
    const cleanup = () => disposeAll(clipped.grads === accumulated ? null : clipped.grads, clipped.totalNorm);
    if (!finite && this.nonFinite === 'error') {
      cleanup();
      throw new Error(`Trainer: non-finite loss (${loss}) or gradient norm (${gradNorm}) at step ${this.step + 1}; nothing was updated (set nonFinite: 'skip' to skip such steps)`);
    }
    try {
      if (finite) this.optimizer.step(clipped.grads, factor);
    } finally {
      cleanup();
    }
    this.step += 1;
    const now = this.clock();
    const baseLrs = this.optimizer.groups.baseLearningRates();
    const metrics: StepMetrics = { step: this.step, loss, lr: baseLrs.default * factor, gradNorm, time: (now - fitStart) / 1000, stepTime: (now - stepStart) / 1000 };
    const groupLrs = Object.entries(baseLrs).filter(([k]) => k !== 'default');
    if (groupLrs.length) metrics.lrs = Object.fromEntries(groupLrs.map(([k, v]) => [k, v * factor]));
    if (tokens !== undefined) metrics.tokens = tokens;
    if (!finite) metrics.skipped = true;
    this.lastMetrics = metrics;
    return metrics;
  }

  /** Train until `options.steps` optimizer steps are done; returns this call's per-step metrics. */
  async fit<B>(options: FitOptions<B>): Promise<StepMetrics[]> {
    const { steps, lossFn } = options;
    if (!Number.isInteger(steps) || steps < 0) throw new Error(`Trainer.fit: steps must be a non-negative integer, got ${String(steps)}`);
    if (typeof lossFn !== 'function') throw new Error('Trainer.fit: lossFn must be a function (batch) => tf.Scalar');
    const checkpoint = options.checkpoint;
    if (checkpoint && (!Number.isInteger(checkpoint.every) || checkpoint.every < 1)) {
      throw new Error(`Trainer.fit: checkpoint.every must be a positive integer, got ${String(checkpoint.every)}`);
    }
    const getBatch = batchGetter(options.batches, this.rng);
    const history: StepMetrics[] = [];
    if (this.step >= steps) return history;
    const progress = this.progressOptions ? new ProgressBar(steps, { clock: this.clock, ...this.progressOptions }) : null;
    const fitStart = this.clock();
    progress?.start(this.step);
    try {
      while (this.step < steps) {
        const step = this.step;
        const metrics = await this.trainStep((micro) => getBatch(step, micro), lossFn, options.tokens, fitStart);
        history.push(metrics);
        this.metricsLog?.append({ ...metrics });
        progress?.update({ step: metrics.step, loss: metrics.loss, lr: metrics.lr, tokens: metrics.tokens });
        if (checkpoint && (metrics.step % checkpoint.every === 0 || metrics.step === steps)) await this.saveScheduledCheckpoint(checkpoint);
        if (options.onStep && (await options.onStep(metrics, this)) === false) break;
      }
    } finally {
      progress?.finish();
    }
    return history;
  }

  private async saveScheduledCheckpoint(checkpoint: CheckpointSchedule): Promise<void> {
    const dir = typeof checkpoint.dir === 'function' ? checkpoint.dir(this.step) : checkpoint.dir;
    await saveCheckpoint(dir, { model: this.model, optimizer: this.optimizer, trainerState: this.state(), modelWeights: checkpoint.modelWeights });
  }
}
