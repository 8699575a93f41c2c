/**
 * Parameter groups: per-parameter learning rate and weight decay chosen by selectors (names,
 * RegExps, modules), e.g. projector lr 2e-3 and MoE lr 1e-4 on top of a base lr of 2e-5.
 *
 * Groups cascade: a parameter starts from the optimizer defaults and every group that matches it
 * overrides the fields that group sets, in order. So `[{ params: ['bias'], weightDecay: 0 },
 * { params: ['mm_projector'], lr: 2e-3 }]` gives the projector's bias lr 2e-3 and no decay, the
 * same result as the four PyTorch groups the HF Trainer builds for that case.
 */
import { Module, type Parameter, LayerNorm, RMSNorm } from '@mllm/core';
import { compileSelector, describeSelector, type ParameterPredicate, type ParameterSelector } from './parameter-selector.js';

export interface ParameterGroupSpec {
  /** Name used in metrics and messages. */
  name: string;
  /** Which parameters belong to the group. */
  params: ParameterSelector[];
  /** Base learning rate of the group (scaled by the schedule). */
  lr?: number;
  /** Decoupled weight decay of the group. */
  weightDecay?: number;
}

export interface GroupHyperparameters {
  lr: number;
  weightDecay: number;
  /** Names of the groups that matched, in order (empty: defaults only). */
  groups: string[];
}

function assertNonNegativeNumber(owner: string, name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new Error(`${owner}: ${name} must be a finite number >= 0, got ${String(value)}`);
  }
}

export interface ParameterGroupsOptions {
  /** Allow a group selector that matches no parameter of the model (default false: it is an error, usually a typo). */
  allowUnmatched?: boolean;
}

/** Resolves each parameter name to its learning rate and weight decay. */
export class ParameterGroups {
  readonly specs: readonly ParameterGroupSpec[];
  private readonly compiled: Array<{ spec: ParameterGroupSpec; predicates: ParameterPredicate[] }>;
  private readonly byName = new Map<string, GroupHyperparameters>();

  constructor(
    parameters: Array<[string, Parameter]>,
    readonly defaults: { lr: number; weightDecay: number },
    specs: ParameterGroupSpec[] = [],
    options: ParameterGroupsOptions = {},
  ) {
    assertNonNegativeNumber('ParameterGroups', 'lr', defaults.lr);
    assertNonNegativeNumber('ParameterGroups', 'weightDecay', defaults.weightDecay);
    const seen = new Set<string>();
    for (const [i, spec] of specs.entries()) {
      const owner = `parameter group ${i}`;
      if (typeof spec?.name !== 'string' || spec.name.length === 0) throw new Error(`${owner}: name must be a non-empty string, got ${String(spec?.name)}`);
      if (seen.has(spec.name)) throw new Error(`${owner}: name '${spec.name}' is used by an earlier group`);
      seen.add(spec.name);
      if (!Array.isArray(spec.params) || spec.params.length === 0) {
        throw new Error(`parameter group '${spec.name}': params must be a non-empty array of selectors`);
      }
      if (spec.lr !== undefined) assertNonNegativeNumber(`parameter group '${spec.name}'`, 'lr', spec.lr);
      if (spec.weightDecay !== undefined) assertNonNegativeNumber(`parameter group '${spec.name}'`, 'weightDecay', spec.weightDecay);
    }
    this.specs = specs.map((s) => ({ ...s, params: [...s.params] }));
    this.compiled = this.specs.map((spec) => ({
      spec,
      predicates: spec.params.map((s) => compileSelector(s, `parameter group '${spec.name}'`)),
    }));
    for (const { spec, predicates } of this.compiled) {
      for (const [k, predicate] of predicates.entries()) {
        if (!options.allowUnmatched && !parameters.some(([n, p]) => predicate(n, p))) {
          throw new Error(`parameter group '${spec.name}': selector ${describeSelector(spec.params[k])} matches no parameter of the model`);
        }
      }
    }
    for (const [name, parameter] of parameters) this.byName.set(name, this.resolveFresh(name, parameter));
  }

  private resolveFresh(name: string, parameter: Parameter): GroupHyperparameters {
    const out: GroupHyperparameters = { lr: this.defaults.lr, weightDecay: this.defaults.weightDecay, groups: [] };
    for (const { spec, predicates } of this.compiled) {
      if (!predicates.some((p) => p(name, parameter))) continue;
      if (spec.lr !== undefined) out.lr = spec.lr;
      if (spec.weightDecay !== undefined) out.weightDecay = spec.weightDecay;
      out.groups.push(spec.name);
    }
    return out;
  }

  /**
   * Hyperparameters of parameter `name`. Parameters added to the model after the groups were
   * built (hook modules, a swapped projector) are resolved on first use when `parameter` is given.
   */
  resolve(name: string, parameter?: Parameter): GroupHyperparameters {
    let found = this.byName.get(name);
    if (!found && parameter) {
      found = this.resolveFresh(name, parameter);
      this.byName.set(name, found);
    }
    if (!found) throw new Error(`ParameterGroups: unknown parameter '${name}'`);
    return found;
  }

  /** Base learning rate per group name (groups that set `lr`), plus `default`. */
  baseLearningRates(): Record<string, number> {
    const out: Record<string, number> = { default: this.defaults.lr };
    for (const spec of this.specs) if (spec.lr !== undefined) out[spec.name] = spec.lr;
    return out;
  }
}

/**
 * The HF Trainer's no-decay set (`get_decay_parameter_names`): parameters of LayerNorm/RMSNorm
 * modules and every parameter whose name contains `bias`. Use as `{ name: 'no_decay', params:
 * [hfNoDecaySelector(model)], weightDecay: 0 }`.
 */
export function hfNoDecaySelector(model: Module): ParameterPredicate {
  const normVariables = new Set<unknown>();
  const visit = (module: Module): void => {
    if (module instanceof LayerNorm || module instanceof RMSNorm) {
      for (const [, p] of module.namedParameters()) normVariables.add(p.variable);
    }
    for (const [, child] of module.children()) visit(child);
  };
  visit(model);
  return (name, parameter) => name.includes('bias') || normVariables.has(parameter.variable);
}

export interface LlavaParameterGroupOptions {
  /** `mm_projector_lr`: learning rate of the projector parameters (unset: no projector group, one lr for all). */
  mmProjectorLr?: number;
  /** Name substrings that select the projector group (default `['mm_projector']`; Wings' `lr_projector_follow_tuned_keys`). */
  projectorKeys?: string[];
  /** Wings' `vision_tower_lr_follow_mm_projector`: vision-tower parameters get the projector lr too. */
  visionTowerFollowsProjector?: boolean;
}

/**
 * The parameter groups of the LLaVA-style trainers used by Parrot and Wings (`create_optimizer`):
 * no weight decay for norm-layer parameters and names containing `bias`; with `mmProjectorLr`,
 * parameters whose name contains a projector key (substring match, as the reference does) get that
 * lr. Equivalent to the reference's four groups via cascading; use as `new AdamW(model,
 * { lr, weightDecay, groups: llavaParameterGroups(model, { mmProjectorLr: 2e-5 }) })`.
 */
export function llavaParameterGroups(model: Module, options: LlavaParameterGroupOptions = {}): ParameterGroupSpec[] {
  const groups: ParameterGroupSpec[] = [{ name: 'no_decay', params: [hfNoDecaySelector(model)], weightDecay: 0 }];
  if (options.mmProjectorLr !== undefined) {
    const keys = [...(options.projectorKeys ?? ['mm_projector'])];
    if (options.visionTowerFollowsProjector) keys.push('vision_tower');
    if (keys.length === 0 || keys.some((k) => typeof k !== 'string' || k.length === 0)) {
      throw new Error(`llavaParameterGroups: projectorKeys must be non-empty strings, got ${JSON.stringify(options.projectorKeys)}`);
    }
    groups.push({ name: 'projector', params: [(name: string) => keys.some((k) => name.includes(k))], lr: options.mmProjectorLr });
  }
  return groups;
}
