/**
 * Training stages: which parts of a model train, everything else frozen — the papers' "stage 1:
 * projector only; stage 2: LLM + projector + MoE, vision frozen" as data.
 *
 * `applyTrainingStage` freezes the whole model, then unfreezes `trainable` (a `Module` through
 * its own `setTrainable(true)`, i.e. structurally, all its descendants; a name pattern / RegExp /
 * predicate parameter by parameter), then re-freezes `frozen`.
 */
import { Module, type Parameter } from '@mllm/core';
import type { AdamWOptions } from './adamw.js';
import { compileSelector, describeSelector, type ParameterSelector } from './parameter-selector.js';

export interface TrainingStage {
  /** e.g. `stage1-alignment`. */
  name: string;
  /** What trains in this stage; everything else is frozen. */
  trainable: ParameterSelector[];
  /** Frozen again after `trainable` was applied (e.g. a sub-module of a trainable module). */
  frozen?: ParameterSelector[];
  /** Optimizer settings of the stage (lr, weight decay, parameter groups), for `new AdamW(model, stage.optimizer)`. */
  optimizer?: AdamWOptions;
  /** Free-form description, saved in checkpoints' trainer state. */
  description?: string;
}

export interface AppliedStage {
  stage: string;
  /** Trainable parameter names after applying. */
  trainable: string[];
  /** Frozen parameter names after applying. */
  frozen: string[];
}

function parameterIsIn(model: Module, module: Module): boolean {
  const variables = new Set(model.namedParameters().map(([, p]) => p.variable));
  const own = module.namedParameters();
  return own.length > 0 && own.every(([, p]) => variables.has(p.variable));
}

/**
 * Freeze everything in `model`, unfreeze `stage.trainable`, re-freeze `stage.frozen`. Every
 * selector is validated first (a module must belong to the model, a pattern must match at least
 * one parameter); on error nothing changes.
 */
export function applyTrainingStage(model: Module, stage: TrainingStage): AppliedStage {
  const owner = `training stage '${stage?.name}'`;
  if (typeof stage?.name !== 'string' || stage.name.length === 0) {
    throw new Error(`applyTrainingStage: stage.name must be a non-empty string, got ${String(stage?.name)}`);
  }
  if (!Array.isArray(stage.trainable)) throw new Error(`${owner}: trainable must be an array of modules or name patterns`);
  const frozen = stage.frozen ?? [];
  if (!Array.isArray(frozen)) throw new Error(`${owner}: frozen must be an array of modules or name patterns`);
  const named = model.namedParameters();
  const problems: string[] = [];
  const compile = (selectors: ParameterSelector[], field: string) =>
    selectors.map((selector) => {
      if (selector instanceof Module) {
        if (!parameterIsIn(model, selector)) problems.push(`${field}: ${describeSelector(selector)} is not a part of ${model.name} (or has no parameters)`);
        return { selector, predicate: null };
      }
      const predicate = compileSelector(selector, `${owner} ${field}`);
      if (!named.some(([n, p]) => predicate(n, p))) problems.push(`${field}: ${describeSelector(selector)} matches no parameter of ${model.name}`);
      return { selector, predicate };
    });
  const trainable = compile(stage.trainable, 'trainable');
  const refrozen = compile(frozen, 'frozen');
  if (problems.length) throw new Error(`${owner}: ${problems.join('; ')}`);

  const apply = (entries: typeof trainable, value: boolean) => {
    for (const { selector, predicate } of entries) {
      if (selector instanceof Module) selector.setTrainable(value);
      else for (const [n, p] of named) if (predicate!(n, p)) p.variable.trainable = value;
    }
  };
  model.setTrainable(false);
  apply(trainable, true);
  apply(refrozen, false);
  return {
    stage: stage.name,
    trainable: named.filter(([, p]) => p.variable.trainable).map(([n]) => n),
    frozen: named.filter(([, p]) => !p.variable.trainable).map(([n]) => n),
  };
}

export interface TrainableRow {
  /** Module path prefix (the first `depth` components of the owning module's path; `(root)` for the model's own parameters). */
  module: string;
  /** Scalar parameters in total / trainable. */
  total: number;
  trainable: number;
  /** Number of parameter tensors in total / trainable. */
  tensors: number;
  trainableTensors: number;
}

export interface TrainableSummary {
  rows: TrainableRow[];
  total: number;
  trainable: number;
}

function sizeOf(p: Parameter): number {
  return p.referenceShape.reduce((a, b) => a * b, 1);
}

/**
 * Trainable vs total parameter counts per top-level module (name prefix of `depth` components,
 * default 1; use 2 for models whose parameters all live under `model.`), in first-seen order.
 */
export function describeTrainable(model: Module, options: { depth?: number } = {}): TrainableSummary {
  const depth = options.depth ?? 1;
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`describeTrainable: depth must be a positive integer, got ${depth}`);
  const rows = new Map<string, TrainableRow>();
  let total = 0;
  let trainable = 0;
  for (const [name, parameter] of model.namedParameters()) {
    const modulePath = name.split('.').slice(0, -1); // drop the parameter's own name
    const key = modulePath.slice(0, depth).join('.') || '(root)';
    const row = rows.get(key) ?? { module: key, total: 0, trainable: 0, tensors: 0, trainableTensors: 0 };
    const size = sizeOf(parameter);
    row.total += size;
    row.tensors += 1;
    total += size;
    if (parameter.variable.trainable) {
      row.trainable += size;
      row.trainableTensors += 1;
      trainable += size;
    }
    rows.set(key, row);
  }
  return { rows: [...rows.values()], total, trainable };
}

/** A fixed-width text table of a summary. */
export function formatTrainableSummary(summary: TrainableSummary): string {
  const percent = (a: number, b: number) => (b === 0 ? '0.0' : ((100 * a) / b).toFixed(1));
  const lines = summary.rows.map((r) => [r.module, String(r.trainable), String(r.total), `${percent(r.trainable, r.total)}%`]);
  lines.push(['total', String(summary.trainable), String(summary.total), `${percent(summary.trainable, summary.total)}%`]);
  const header = ['module', 'trainable', 'total', 'share'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [format(header), ...lines.map(format)].join('\n');
}
