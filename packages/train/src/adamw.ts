/**
 * AdamW with PyTorch's `torch.optim.AdamW` semantics (decoupled weight decay, bias correction),
 * over the tf.Variables of a `Module`, with its state kept by reference parameter name.
 *
 * For a parameter `p` with gradient `g`, at its `t`-th update (t counted per parameter, starting at 1):
 *
 *     p ← p · (1 − lr·wd)                       decoupled weight decay
 *     m ← β₁·m + (1 − β₁)·g
 *     v ← β₂·v + (1 − β₂)·g²
 *     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 *
 * Parameters without a gradient in a step are skipped entirely (no decay, no state change), as in
 * PyTorch. The bias corrections and step size are computed in float64 on the host, the tensor
 * math in float32. `m` and `v` are created lazily (zeros) on a parameter's first update.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fromReferenceLayout, toReferenceLayout, type Module, type Parameter, type ParameterLayout } from '@mllm/core';
import { ParameterGroups, type ParameterGroupSpec, type ParameterGroupsOptions } from './parameter-groups.js';

export interface AdamWOptions extends ParameterGroupsOptions {
  /** Base learning rate (default 1e-3, PyTorch). */
  lr?: number;
  /** `[β₁, β₂]` (default `[0.9, 0.999]`). */
  betas?: [number, number];
  /** ε added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.01, PyTorch; the HF Trainer's default is 0). */
  weightDecay?: number;
  /** Per-group lr / weight decay overrides (see `ParameterGroups`). */
  groups?: ParameterGroupSpec[];
}

/** JSON-serializable hyperparameters (saved with the optimizer state). */
export interface AdamWConfig {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  groups: Array<{ name: string; lr?: number; weightDecay?: number }>;
}

interface SlotState {
  /** First moment, internal layout. */
  m: tf.Variable;
  /** Second moment, internal layout. */
  v: tf.Variable;
  /** Number of updates applied to this parameter. */
  step: number;
  /** The parameter's layout (for the reference-layout state dict). */
  layout: ParameterLayout;
}

/** Suffixes of the optimizer state-dict keys: `<parameter name>.<suffix>`. */
export const ADAMW_STATE_SUFFIXES = ['exp_avg', 'exp_avg_sq', 'step'] as const;

/** Host-side scalars of one update (float64), exposed for tests and reference checks. */
export function adamwScalars(lr: number, beta1: number, beta2: number, step: number): { stepSize: number; biasCorrection2Sqrt: number } {
  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2 = 1 - beta2 ** step;
  return { stepSize: lr / biasCorrection1, biasCorrection2Sqrt: Math.sqrt(biasCorrection2) };
}

function checkOption(name: string, value: number, ok: boolean, expected: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok) {
    throw new Error(`AdamW: ${name} must be ${expected}, got ${String(value)}`);
  }
}

export class AdamW {
  readonly betas: [number, number];
  readonly eps: number;
  readonly groups: ParameterGroups;
  private parameters: Map<string, Parameter>;
  private readonly slots = new Map<string, SlotState>();
  private disposed = false;

  constructor(
    readonly model: Module,
    options: AdamWOptions = {},
  ) {
    const lr = options.lr ?? 1e-3;
    const weightDecay = options.weightDecay ?? 0.01;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    checkOption('lr', lr, lr >= 0, 'a finite number >= 0');
    checkOption('weightDecay', weightDecay, weightDecay >= 0, 'a finite number >= 0');
    if (!Array.isArray(this.betas) || this.betas.length !== 2) {
      throw new Error(`AdamW: betas must be [beta1, beta2], got ${JSON.stringify(this.betas)}`);
    }
    checkOption('betas[0]', this.betas[0], this.betas[0] >= 0 && this.betas[0] < 1, 'in [0, 1)');
    checkOption('betas[1]', this.betas[1], this.betas[1] >= 0 && this.betas[1] < 1, 'in [0, 1)');
    checkOption('eps', this.eps, this.eps >= 0, 'a finite number >= 0');
    const named = model.namedParameters();
    this.parameters = new Map(named);
    this.groups = new ParameterGroups(named, { lr, weightDecay }, options.groups ?? [], options);
  }

  /** Hyperparameters as JSON. */
  config(): AdamWConfig {
    return {
      lr: this.groups.defaults.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.groups.defaults.weightDecay,
      groups: this.groups.specs.map((s) => ({ name: s.name, lr: s.lr, weightDecay: s.weightDecay })),
    };
  }

  /** Number of updates applied to parameter `name` so far (0 when it has no state). */
  stepCount(name: string): number {
    return this.slots.get(name)?.step ?? 0;
  }

  /** The learning rate parameter `name` gets with schedule multiplier `lrFactor`. */
  learningRate(name: string, lrFactor = 1): number {
    return this.groups.resolve(name, this.parameter(name)).lr * lrFactor;
  }

  /**
   * The model's parameter `name`. The model is re-read when the name is unknown, so modules
   * attached after the optimizer was built (hooks, a new projector) are optimized too.
   */
  private parameter(name: string): Parameter | undefined {
    let parameter = this.parameters.get(name);
    if (!parameter) {
      this.parameters = new Map(this.model.namedParameters());
      parameter = this.parameters.get(name);
    }
    return parameter;
  }

  private assertUsable(): void {
    if (this.disposed) throw new Error('AdamW: the optimizer is disposed');
  }

  /**
   * Apply one update. `grads` maps reference parameter names to gradients in the internal layout
   * (as `tf.variableGrads` returns them for `Parameter.variable.read()`); parameters absent from
   * the map are skipped. `lrFactor` multiplies every group's base lr (the schedule's factor).
   * The caller keeps ownership of `grads`.
   */
  step(grads: Map<string, tf.Tensor>, lrFactor = 1): void {
    this.assertUsable();
    checkOption('lrFactor', lrFactor, lrFactor >= 0, 'a finite number >= 0');
    this.parameters = new Map(this.model.namedParameters()); // children may have been added or swapped
    for (const [name, grad] of grads) {
      const parameter = this.parameter(name);
      if (!parameter) throw new Error(`AdamW.step: gradient for unknown parameter '${name}' (not a parameter of ${this.model.name})`);
      const variable = parameter.variable.read() as tf.Variable;
      if (!grad.shape.every((d, i) => d === variable.shape[i]) || grad.rank !== variable.rank) {
        throw new Error(`AdamW.step: gradient for '${name}' has shape [${grad.shape}], expected [${variable.shape}] (internal layout)`);
      }
      const { lr: baseLr, weightDecay } = this.groups.resolve(name, parameter);
      const lr = baseLr * lrFactor;
      let slot = this.slots.get(name);
      if (!slot) {
        slot = {
          m: tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
          v: tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
          step: 0,
          layout: parameter.layout,
        };
        this.slots.set(name, slot);
      }
      slot.step += 1;
      const [beta1, beta2] = this.betas;
      const { stepSize, biasCorrection2Sqrt } = adamwScalars(lr, beta1, beta2, slot.step);
      const { m, v } = slot;
      tf.tidy(() => {
        const decayed = weightDecay !== 0 && lr !== 0 ? tf.mul(variable, 1 - lr * weightDecay) : variable;
        const newM = tf.add(tf.mul(m, beta1), tf.mul(grad, 1 - beta1));
        const newV = tf.add(tf.mul(v, beta2), tf.mul(tf.square(grad), 1 - beta2));
        const denominator = tf.add(tf.div(tf.sqrt(newV), biasCorrection2Sqrt), this.eps);
        const newParameter = tf.sub(decayed, tf.mul(tf.div(newM, denominator), stepSize));
        m.assign(newM);
        v.assign(newV);
        variable.assign(newParameter);
      });
    }
  }

  /**
   * The state as tensors by name: `<param>.exp_avg`, `<param>.exp_avg_sq` (reference layout,
   * like the model's state dict) and `<param>.step` (int32 scalar), for parameters that have
   * state. New tensors; the caller disposes them.
   */
  stateDict(): Map<string, tf.Tensor> {
    this.assertUsable();
    const out = new Map<string, tf.Tensor>();
    for (const [name, slot] of this.slots) {
      out.set(`${name}.exp_avg`, tf.tidy(() => toReferenceLayout(slot.m, slot.layout)));
      out.set(`${name}.exp_avg_sq`, tf.tidy(() => toReferenceLayout(slot.v, slot.layout)));
      out.set(`${name}.step`, tf.scalar(slot.step, 'int32'));
    }
    return out;
  }

  /**
   * Replace the state with `dict` (as written by `stateDict`). Every entry is checked first
   * (unknown parameters or suffixes, incomplete triples, shapes, steps); on any problem one error
   * lists them all and the current state is left unchanged. The caller keeps ownership of `dict`.
   */
  loadStateDict(dict: Map<string, tf.Tensor>): void {
    this.assertUsable();
    const problems: string[] = [];
    const entries = new Map<string, Partial<Record<(typeof ADAMW_STATE_SUFFIXES)[number], tf.Tensor>>>();
    for (const [key, tensor] of dict) {
      const suffix = ADAMW_STATE_SUFFIXES.find((s) => key.endsWith(`.${s}`));
      if (!suffix) {
        problems.push(`unexpected key '${key}' (expected '<parameter>.{${ADAMW_STATE_SUFFIXES.join(',')}}')`);
        continue;
      }
      const name = key.slice(0, key.length - suffix.length - 1);
      const parameter = this.parameter(name);
      if (!parameter) {
        problems.push(`key '${key}' names no parameter of the model`);
        continue;
      }
      const expected = suffix === 'step' ? [] : parameter.referenceShape;
      if (tensor.rank !== expected.length || !tensor.shape.every((d, i) => d === expected[i])) {
        problems.push(`size mismatch for '${key}': expected [${expected}], got [${tensor.shape}]`);
        continue;
      }
      const entry = entries.get(name) ?? {};
      entry[suffix] = tensor;
      entries.set(name, entry);
    }
    const steps = new Map<string, number>();
    for (const [name, entry] of entries) {
      const absent = ADAMW_STATE_SUFFIXES.filter((s) => !entry[s]);
      if (absent.length) {
        problems.push(`state of '${name}' lacks ${absent.map((s) => `'${name}.${s}'`).join(', ')}`);
        continue;
      }
      const step = entry.step!.dataSync()[0];
      if (!Number.isInteger(step) || step < 1) problems.push(`'${name}.step' must be an integer >= 1, got ${step}`);
      steps.set(name, step);
    }
    if (problems.length) throw new Error(`AdamW.loadStateDict: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    this.resetState();
    for (const [name, entry] of entries) {
      const layout = this.parameter(name)!.layout;
      const toVariable = (t: tf.Tensor) =>
        tf.tidy(() => tf.variable(fromReferenceLayout(t.dtype === 'float32' ? t : tf.cast(t, 'float32'), layout), false));
      this.slots.set(name, { m: toVariable(entry.exp_avg!), v: toVariable(entry.exp_avg_sq!), step: steps.get(name)!, layout });
    }
  }

  /** Drop all state (moments and step counts). */
  resetState(): void {
    for (const slot of this.slots.values()) {
      slot.m.dispose();
      slot.v.dispose();
    }
    this.slots.clear();
  }

  /** Release the state tensors. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.resetState();
    this.disposed = true;
  }
}
