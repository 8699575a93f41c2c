/**
 * `attachWings(host, config)`: Wings on core's attach contract (`attachModule`), the one way to put
 * Wings learners on a host model:
 *
 *   const wings = attachWings(host, { stage: 1, rank: 64 });   // AttachedModule<WingsAdapter, ResolvedWingsConfig>
 *   const files = saveAdapter(wings);                          // @mllm/core: adapter_config.json + adapter_model.safetensors
 *   const again = await loadAdapter(freshHost, files);         // attaches Wings from the record, loads the weights
 *
 * The learners appear in the host's state dict under the reference names
 * (`model.layers.{i}.attn_pool.*`, `model.layers.{i}.attn_t_pool.*`, `model.layers.{i}.reweight_module.*`)
 * and the record carries the resolved config under the reference's field names (`lora_dim`,
 * `target_layers`, `reference_compat`, … as Wings' own `adapter_config.json` named them).
 */
import {
  assertModuleHost,
  attachModule,
  type AttachedModule,
  type ModuleHost,
  type ModuleKind,
  type ModuleRecord,
} from '@mllm/core';
import { name as packageName, version as packageVersion } from '../package.json';
import { WingsAdapter, resolveWingsConfig, type ResolvedWingsConfig, type WingsConfig, type WingsHostDimensions } from './inject.js';

/** The npm package that defines the `wings` module kind. */
export const WINGS_PACKAGE: string = packageName;
/** This package's version (read from package.json at build time), recorded in saved files. */
export const WINGS_VERSION: string = packageVersion;
/** `module_type` of Wings in saved files. */
export const WINGS_MODULE_TYPE = 'wings';

/** A Wings module attached to a host (what `attachWings` returns). */
export type AttachedWings = AttachedModule<WingsAdapter, ResolvedWingsConfig>;

/** Attach an existing `WingsAdapter` (e.g. with loaded weights) instead of building a fresh one. */
export interface AttachExistingWings {
  module: WingsAdapter;
  /** Freeze the host model's own parameters (default true). */
  freezeBase?: boolean;
}

/** The `reference_compat` record (snake_case switches). */
export type WingsReferenceCompatRecord = {
  double_add: boolean;
  text_only_no_router: boolean;
  misaligned_text_mask: boolean;
};

/**
 * The resolved configuration under the reference's field names: what a module record's `config`
 * (and, with `peft_type: 'WINGS'`, the old adapter_config.json) holds.
 */
// A type alias (not an interface) so it is a `Record<string, unknown>`, what module records hold.
export type WingsReferenceConfig = {
  stage: 1 | 2;
  lora_dim: number;
  target_layers: number[];
  router_max_length: number;
  hidden_size: number;
  num_attention_heads: number;
  num_hidden_layers: number;
  rope_theta: number;
  init_std: number;
  visual_causal: boolean;
  reference_compat: WingsReferenceCompatRecord;
  system_prompt_length: number;
};

/** `ResolvedWingsConfig` → reference field names. */
export function wingsReferenceConfig(c: ResolvedWingsConfig): WingsReferenceConfig {
  return {
    stage: c.stage,
    lora_dim: c.rank,
    target_layers: [...c.layers],
    router_max_length: c.routerMaxLength,
    hidden_size: c.hiddenSize,
    num_attention_heads: c.numHeads,
    num_hidden_layers: c.numLayers,
    rope_theta: c.ropeTheta,
    init_std: c.initStd,
    visual_causal: c.visualCausal,
    reference_compat: {
      double_add: c.referenceCompat.doubleAdd,
      text_only_no_router: c.referenceCompat.textOnlyNoRouter,
      misaligned_text_mask: c.referenceCompat.misalignedTextMask,
    },
    system_prompt_length: c.systemPromptLength,
  };
}

const REFERENCE_FIELDS = [
  'stage', 'lora_dim', 'target_layers', 'router_max_length', 'hidden_size', 'num_attention_heads', 'num_hidden_layers',
  'rope_theta', 'init_std', 'visual_causal', 'reference_compat', 'system_prompt_length',
] as const;
const COMPAT_FIELDS = ['double_add', 'text_only_no_router', 'misaligned_text_mask'] as const;

const shown = (value: unknown): string => (value === undefined ? 'undefined' : JSON.stringify(value));

/**
 * Reference-named config (a module record's `config`, or an old adapter_config.json without its
 * `peft_type`) → the `WingsConfig` that rebuilds the same module. Every field must be present with
 * its type; unknown fields are errors (each message names `where`, the field, the expected and the
 * actual value). Ranges are checked by `resolveWingsConfig` when the config is resolved.
 */
export function wingsConfigFromReference(record: unknown, where = 'Wings record config'): WingsConfig {
  if (!record || typeof record !== 'object' || Array.isArray(record)) throw new Error(`${where}: must be an object, got ${shown(record)}`);
  const r = record as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !(REFERENCE_FIELDS as readonly string[]).includes(k));
  if (unknown.length) throw new Error(`${where}: unknown field(s) ${unknown.join(', ')}; expected ${REFERENCE_FIELDS.join(', ')}`);
  const int = (field: string, min: number): number => {
    const v = r[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`${where}: ${field} must be an integer ≥ ${min}, got ${shown(v)}`);
    return v;
  };
  const num = (field: string): number => {
    const v = r[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: ${field} must be a finite number, got ${shown(v)}`);
    return v;
  };
  const bool = (source: Record<string, unknown>, field: string, label = field): boolean => {
    const v = source[field];
    if (typeof v !== 'boolean') throw new Error(`${where}: ${label} must be true or false, got ${shown(v)}`);
    return v;
  };
  const stage = r['stage'];
  if (stage !== 1 && stage !== 2) throw new Error(`${where}: stage must be 1 or 2, got ${shown(stage)}`);
  const layers = r['target_layers'];
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((i) => Number.isInteger(i) && (i as number) >= 0)) {
    throw new Error(`${where}: target_layers must be a non-empty list of layer indices, got ${shown(layers)}`);
  }
  const compat = r['reference_compat'];
  if (!compat || typeof compat !== 'object' || Array.isArray(compat)) {
    throw new Error(`${where}: reference_compat must be an object { ${COMPAT_FIELDS.join(', ')} }, got ${shown(compat)}`);
  }
  const c = compat as Record<string, unknown>;
  const unknownCompat = Object.keys(c).filter((k) => !(COMPAT_FIELDS as readonly string[]).includes(k));
  if (unknownCompat.length) throw new Error(`${where}: unknown reference_compat field(s) ${unknownCompat.join(', ')}; expected ${COMPAT_FIELDS.join(', ')}`);
  return {
    stage,
    rank: int('lora_dim', 1),
    layers: [...(layers as number[])],
    routerMaxLength: int('router_max_length', 1),
    hiddenSize: int('hidden_size', 1),
    numHeads: int('num_attention_heads', 1),
    numLayers: int('num_hidden_layers', 1),
    ropeTheta: num('rope_theta'),
    initStd: num('init_std'),
    visualCausal: bool(r, 'visual_causal'),
    referenceCompat: {
      doubleAdd: bool(c, 'double_add', 'reference_compat.double_add'),
      textOnlyNoRouter: bool(c, 'text_only_no_router', 'reference_compat.text_only_no_router'),
      misalignedTextMask: bool(c, 'misaligned_text_mask', 'reference_compat.misaligned_text_mask'),
    },
    systemPromptLength: int('system_prompt_length', 0),
  };
}

/** A resolved config as the `WingsConfig` that resolves to it again. */
export function wingsConfigOf(c: ResolvedWingsConfig): WingsConfig {
  return {
    stage: c.stage,
    rank: c.rank,
    layers: [...c.layers],
    routerMaxLength: c.routerMaxLength,
    hiddenSize: c.hiddenSize,
    numHeads: c.numHeads,
    numLayers: c.numLayers,
    ropeTheta: c.ropeTheta,
    initStd: c.initStd,
    visualCausal: c.visualCausal,
    referenceCompat: { ...c.referenceCompat },
    systemPromptLength: c.systemPromptLength,
  };
}

/** The host dimensions Wings reads, from `host.baseModelShape()` (HF config names → Wings' names). */
export function wingsHostDimensions(host: ModuleHost): WingsHostDimensions {
  const shape = host.baseModelShape();
  return { hiddenSize: shape.hidden_size, numHeads: shape.num_attention_heads, numLayers: shape.num_hidden_layers, ropeTheta: shape.rope_theta };
}

/**
 * Attach Wings learners to `host`'s chosen decoder layers through its `afterAttention` hook: the
 * host's own parameters are frozen (unless `freezeBase: false`), the stage's Wings modules are
 * trainable (stage 1: `attn_pool`; stage 2: every learner and router), and the learners appear in
 * the host's state dict under the reference names. `config` is a `WingsConfig` (dimensions default
 * to the host's `baseModelShape()`, and must equal it when given), or `{ module }`, an existing
 * `WingsAdapter` (e.g. with loaded weights; checked against the host, not disposed on failure).
 * Save and load with `@mllm/core`'s `saveAdapter` / `loadAdapter` (`saveAdapterFiles` /
 * `loadAdapterFiles` for a directory). `remove()` detaches; `module.dispose()` frees the learners.
 */
export function attachWings(host: ModuleHost, config: WingsConfig | AttachExistingWings): AttachedWings {
  assertModuleHost('attachWings', host);
  const dims = wingsHostDimensions(host);
  let adapter: WingsAdapter;
  let owned: boolean;
  let freezeBase: boolean | undefined;
  if (config && typeof config === 'object' && 'module' in config) {
    const extra = Object.keys(config).filter((k) => k !== 'module' && k !== 'freezeBase');
    if (extra.length) throw new Error(`attachWings: with { module } the config comes from the module; unexpected option(s) ${extra.join(', ')}`);
    const module: unknown = config.module;
    if (!(module instanceof WingsAdapter)) {
      const got = module === null ? 'null' : typeof module === 'object' ? `an instance of ${(module as object).constructor?.name ?? 'Object'}` : typeof module;
      throw new Error(`attachWings: module must be a WingsAdapter, got ${got}`);
    }
    // Checks the module's dimensions against the host's (a mismatch names the field).
    resolveWingsConfig(wingsConfigOf(config.module.config), dims);
    adapter = config.module;
    owned = false;
    freezeBase = config.freezeBase;
  } else {
    adapter = new WingsAdapter(resolveWingsConfig(config, dims));
    owned = true;
    freezeBase = config.freezeBase;
  }
  const { namedModules: _named, ...hooks } = adapter.hooks();
  try {
    return attachModule('attachWings', host, {
      type: WINGS_MODULE_TYPE,
      packageName: WINGS_PACKAGE,
      version: WINGS_VERSION,
      module: adapter,
      config: adapter.config,
      referenceConfig: wingsReferenceConfig(adapter.config),
      hooks,
      namedModules: adapter.namedChildren(),
      freezeBase,
      afterAttach: () => adapter.resetTrainable(),
    });
  } catch (error) {
    if (owned) adapter.dispose();
    throw error;
  }
}

/** Rebuild Wings on `host` from a module record (`adapter_config.json`, a saved host's config). */
export function attachWingsFromRecord(host: ModuleHost, record: ModuleRecord): AttachedWings {
  assertModuleHost('attachWings', host);
  if (record?.module_type !== WINGS_MODULE_TYPE) {
    throw new Error(`attachWings: the record's module_type must be "${WINGS_MODULE_TYPE}", got ${shown(record?.module_type)}`);
  }
  return attachWings(host, wingsConfigFromReference(record.config, 'attachWings: record config'));
}

/** The `wings` module kind (registered when `@mllm/wings` is imported). */
export const WINGS_MODULE_KIND: ModuleKind = {
  type: WINGS_MODULE_TYPE,
  packageName: WINGS_PACKAGE,
  version: WINGS_VERSION,
  attachFromRecord: attachWingsFromRecord,
};
