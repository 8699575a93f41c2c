/**
 * `attachParrot(host, config)`: Parrot's one attach verb on core's module contract (`attachModule`).
 *
 * The MoE sits between the projector and the LLM (`transformVisual` hook, see `hooks.ts`) and its
 * parameters appear in the host's state dict as `model.moe_model.*`, the names of
 * `ParrotQwen2ForCausalLM`, so a released Parrot checkpoint loads into the host in one call.
 * Saved files (`saveAdapter`, a host saved with its modules) record the MoE's config in the keys
 * of Parrot's `config.json`:
 *
 *   moe_hidden_size, moe_intermediate_size, num_experts, moe_weight, use_moe, use_moe_residual,
 *   mm_vision_select_feature ('cls_patch')
 *
 * plus this port's options the reference lacks (snake_case, no reference key): `sparse_top_k`
 * (null = dense routing as Parrot; Parrot's own `moe_top_k` is stored but unused, so it is not
 * written), `aux_loss_coefficient`, `multi_image`. A record is thus also a valid input of
 * `ParrotMoE.fromReferenceConfig`.
 */
import {
  assertModuleHost,
  attachModule,
  assertBoolean,
  assertFiniteNumber,
  assertPositiveInt,
  assertKnownKeys,
  assertOptionsObject,
  describeValue,
  registerModuleKind,
  type AttachedModule,
  type ModuleHost,
  type ModuleRecord,
} from '@mllm/core';
import { PARROT_CHECKPOINT_PREFIX, ParrotMoE, type ParrotMoEArgs, type ParrotMoEOutputs } from './parrot-moe.js';
import { createParrotHooks } from './hooks.js';
import { PARROT_VERSION } from './version.js';

/** `module_type` of Parrot in saved files. */
export const PARROT_MODULE_TYPE = 'parrot';
const PACKAGE_NAME = '@mllm/parrot';

/** What `attachParrot` takes. */
export interface AttachParrotConfig {
  /**
   * An existing MoE (e.g. with loaded weights); its `hiddenSize` must equal the host's. Absent: a
   * fresh MoE is built from the host's shape (`hiddenSize` = the host's `hidden_size`) and the
   * fields below. Give either `moe` or the build fields, not both.
   */
  moe?: ParrotMoE;
  /** `I` (`moe_intermediate_size`), required when building. */
  intermediateSize?: number;
  /** `E` (`num_experts`), required when building. */
  numExperts?: number;
  /** `α` (`moe_weight`, default 0.1 as trained). */
  moeWeight?: number;
  /** Run the MoE (`use_moe`, default true = stage 2; false = stage 1, identity). */
  useMoe?: boolean;
  /** Add `α·H` (`use_moe_residual`, default true). */
  useResidual?: boolean;
  /** Beyond the reference: sparse top-k routing (default null = dense, as Parrot). */
  topK?: number | null;
  /** Beyond the reference: load-balancing loss coefficient (default 0 = off). */
  auxLossCoefficient?: number;
  /** How experts are evaluated (same math, runtime choice, not recorded in saved files). */
  expertStrategy?: ParrotMoEArgs['expertStrategy'];
  /** Samples with several images: `clean` (default) or `reference` (see `ParrotHooksOptions.multiImage`). */
  multiImage?: 'clean' | 'reference';
  /** Called with every forward's routing weights, text attention and aux loss (see `ParrotHooksOptions.onForward`). */
  onForward?: (outputs: Omit<ParrotMoEOutputs, 'output'>) => void;
  /**
   * Freeze the host's own parameters when attaching (default **false**: the host's trainable flags
   * are left as they are). Parrot never trains its MoE on a frozen base: stage 1 (alignment) trains
   * the projector with the MoE bypassed, stage 2 (instruction tuning) trains projector, LLM and MoE
   * together with only the vision encoder frozen (the reference's `pretrain.sh` / `finetune.sh`).
   * Pass `true` for an MoE-only fine-tune, whose result an adapter file (`saveAdapter`) then holds
   * entirely; with the default, save the host too (`saveHostModel`).
   */
  freezeBase?: boolean;
}

/**
 * Parrot's resolved configuration (`AttachedModule.config`). It reads the MoE's current settings,
 * so it follows `moe.setStage(…)` and changes of `moeWeight`, `topK`, … after attaching, as do
 * the records that saved files take.
 */
export interface ParrotConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numExperts: number;
  readonly moeWeight: number;
  readonly useMoe: boolean;
  readonly useResidual: boolean;
  readonly topK: number | null;
  readonly auxLossCoefficient: number;
  readonly multiImage: 'clean' | 'reference';
}

/** The handle `attachParrot` returns. */
export type AttachedParrot = AttachedModule<ParrotMoE, ParrotConfig>;

const CONFIG_KEYS = [
  'moe', 'intermediateSize', 'numExperts', 'moeWeight', 'useMoe', 'useResidual', 'topK', 'auxLossCoefficient', 'expertStrategy',
  'multiImage', 'onForward', 'freezeBase',
];
const BUILD_KEYS = ['intermediateSize', 'numExperts', 'moeWeight', 'useMoe', 'useResidual', 'topK', 'auxLossCoefficient', 'expertStrategy'] as const;

/** A live view of the MoE's settings (enumerable getters, so it prints and compares like a plain object). */
function liveConfig(moe: ParrotMoE, multiImage: 'clean' | 'reference'): ParrotConfig {
  const config = {} as ParrotConfig;
  const fields: Array<[keyof ParrotConfig, () => unknown]> = [
    ['hiddenSize', () => moe.hiddenSize],
    ['intermediateSize', () => moe.intermediateSize],
    ['numExperts', () => moe.numExperts],
    ['moeWeight', () => moe.moeWeight],
    ['useMoe', () => moe.useMoe],
    ['useResidual', () => moe.useResidual],
    ['topK', () => moe.topK],
    ['auxLossCoefficient', () => moe.auxLossCoefficient],
    ['multiImage', () => multiImage],
  ];
  for (const [key, get] of fields) Object.defineProperty(config, key, { get, enumerable: true });
  return config;
}

/** The config in reference field names (what saved files record). */
function referenceConfig(config: ParrotConfig): Record<string, unknown> {
  return {
    moe_hidden_size: config.hiddenSize,
    moe_intermediate_size: config.intermediateSize,
    num_experts: config.numExperts,
    moe_weight: config.moeWeight,
    use_moe: config.useMoe,
    use_moe_residual: config.useResidual,
    mm_vision_select_feature: 'cls_patch',
    sparse_top_k: config.topK,
    aux_loss_coefficient: config.auxLossCoefficient,
    multi_image: config.multiImage,
  };
}

/**
 * Attach Parrot's multilingual MoE to `host` (PEFT-style; one call instead of `parrotHooks` +
 * `addHooks`):
 *
 * - the MoE replaces each image's projected tokens before they are spliced (`transformVisual`),
 *   routed with the prompt text of the image's sample;
 * - its parameters join the host's state dict as `model.moe_model.*` (reference names);
 * - the MoE is trainable in stage 2 (`useMoe` true) and frozen in stage 1, as the reference's
 *   `tune_model`; `moe.setStage(…)` switches later;
 * - the host is frozen only with `freezeBase: true` (see {@link AttachParrotConfig.freezeBase}).
 *
 * The host must project the CLS token (`vision_select_feature` `cls_patch`): Parrot routes with it,
 * so any other host is refused here, before anything changes. `remove()` detaches (the MoE is not
 * disposed). Save with core's `saveAdapter(attached)`; load with `loadAdapter(host, files)`.
 *
 * @example
 * ```ts
 * const parrot = attachParrot(host, { intermediateSize: 4096, numExperts: 6 });
 * const files = saveAdapter(parrot); // { config, weights }
 * const again = await loadAdapter(otherHost, files);
 * ```
 */
export function attachParrot(host: ModuleHost, config: AttachParrotConfig = {}): AttachedParrot {
  const owner = 'attachParrot';
  assertModuleHost(owner, host);
  assertOptionsObject(owner, 'config', config as unknown);
  // The config never reaches a tfjs Layer, so its keys (`name`, `trainable`, `dtype`, …) would be ignored: unknown here.
  assertKnownKeys(owner, config, CONFIG_KEYS, { layerKeys: false });
  const shape = host.baseModelShape();
  if (shape.vision_select_feature !== 'cls_patch') {
    throw new Error(
      `${owner}: Parrot routes each image with its projected CLS token (row 0), so the host must keep it: ` +
        `its vision_select_feature (the vision config's selectFeature) must be 'cls_patch', got ${describeValue(shape.vision_select_feature)}`,
    );
  }
  const multiImage = config.multiImage ?? 'clean';
  if (multiImage !== 'clean' && multiImage !== 'reference') {
    throw new Error(`${owner}: config.multiImage must be 'clean' or 'reference', got ${describeValue(config.multiImage)}`);
  }
  if (config.onForward !== undefined && typeof config.onForward !== 'function') {
    throw new Error(`${owner}: config.onForward must be a function, got ${describeValue(config.onForward)}`);
  }
  if (config.freezeBase !== undefined) assertBoolean(owner, 'config.freezeBase', config.freezeBase);
  let moe: ParrotMoE;
  let built = false;
  if (config.moe !== undefined) {
    if (!(config.moe instanceof ParrotMoE)) throw new Error(`${owner}: config.moe must be a ParrotMoE, got ${describeValue(config.moe)}`);
    const extra = BUILD_KEYS.filter((k) => config[k] !== undefined);
    if (extra.length) {
      throw new Error(`${owner}: give either config.moe or the fields to build one, not both (got moe and ${extra.join(', ')}); set them on the MoE instead`);
    }
    if (config.moe.hiddenSize !== shape.hidden_size) {
      throw new Error(`${owner}: config.moe.hiddenSize must equal the host's hidden_size ${shape.hidden_size}, got ${config.moe.hiddenSize}`);
    }
    moe = config.moe;
  } else {
    assertPositiveInt(owner, 'config.intermediateSize', config.intermediateSize);
    assertPositiveInt(owner, 'config.numExperts', config.numExperts);
    const args: ParrotMoEArgs = { hiddenSize: shape.hidden_size, intermediateSize: config.intermediateSize as number, numExperts: config.numExperts as number };
    for (const key of BUILD_KEYS.slice(2)) if (config[key] !== undefined) (args as unknown as Record<string, unknown>)[key] = config[key];
    moe = new ParrotMoE(args);
    built = true;
  }
  const { transformVisual, requiresFullSequence } = createParrotHooks(owner, moe, { multiImage, onForward: config.onForward });
  const resolved = liveConfig(moe, multiImage);
  try {
    return attachModule(owner, host, {
      type: PARROT_MODULE_TYPE,
      packageName: PACKAGE_NAME,
      version: PARROT_VERSION,
      module: moe,
      config: resolved,
      referenceConfig: () => referenceConfig(resolved),
      hooks: { transformVisual, requiresFullSequence },
      namedModules: [[PARROT_CHECKPOINT_PREFIX.slice(0, -1), moe]],
      freezeBase: config.freezeBase ?? false,
      afterAttach: () => moe.setTrainable(moe.useMoe),
    });
  } catch (error) {
    if (built) moe.dispose();
    throw error;
  }
}

const RECORD_KEYS = [
  'moe_hidden_size', 'moe_intermediate_size', 'num_experts', 'moe_weight', 'use_moe', 'use_moe_residual',
  'mm_vision_select_feature', 'sparse_top_k', 'aux_loss_coefficient', 'multi_image',
];

/**
 * `attachParrot` from a saved record's reference-named config (the registered kind's
 * `attachFromRecord`): every field is required and checked, so a bad file fails before anything
 * is attached. The MoE is fresh; the caller loads its weights.
 */
export function attachParrotFromRecord(host: ModuleHost, record: ModuleRecord): AttachedParrot {
  const owner = 'attachParrot (from a saved parrot config)';
  assertModuleHost(owner, host);
  const c = record?.config as Record<string, unknown> | undefined;
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${owner}: config must be an object, got ${describeValue(c)}`);
  const unknown = Object.keys(c).filter((k) => !RECORD_KEYS.includes(k));
  if (unknown.length) throw new Error(`${owner}: unknown field(s) ${unknown.join(', ')} (known: ${RECORD_KEYS.join(', ')})`);
  for (const key of ['moe_hidden_size', 'moe_intermediate_size', 'num_experts'] as const) assertPositiveInt(owner, key, c[key]);
  const { moe_intermediate_size: intermediateSize, num_experts: numExperts } = c as { moe_intermediate_size: number; num_experts: number };
  assertFiniteNumber(owner, 'moe_weight', c.moe_weight);
  assertBoolean(owner, 'use_moe', c.use_moe);
  assertBoolean(owner, 'use_moe_residual', c.use_moe_residual);
  if (c.mm_vision_select_feature !== 'cls_patch') {
    throw new Error(`${owner}: mm_vision_select_feature must be 'cls_patch', got ${describeValue(c.mm_vision_select_feature)}`);
  }
  if (c.sparse_top_k !== null) assertPositiveInt(owner, 'sparse_top_k (or null)', c.sparse_top_k);
  assertFiniteNumber(owner, 'aux_loss_coefficient', c.aux_loss_coefficient);
  if (c.multi_image !== 'clean' && c.multi_image !== 'reference') {
    throw new Error(`${owner}: multi_image must be 'clean' or 'reference', got ${describeValue(c.multi_image)}`);
  }
  const hidden = host.baseModelShape().hidden_size;
  if (c.moe_hidden_size !== hidden) {
    throw new Error(`${owner}: moe_hidden_size must equal the host's hidden_size ${hidden}, got ${c.moe_hidden_size}`);
  }
  return attachParrot(host, {
    intermediateSize,
    numExperts,
    moeWeight: c.moe_weight as number,
    useMoe: c.use_moe as boolean,
    useResidual: c.use_moe_residual as boolean,
    topK: c.sparse_top_k as number | null,
    auxLossCoefficient: c.aux_loss_coefficient as number,
    multiImage: c.multi_image,
  });
}

registerModuleKind({ type: PARROT_MODULE_TYPE, packageName: PACKAGE_NAME, version: PARROT_VERSION, attachFromRecord: attachParrotFromRecord });
