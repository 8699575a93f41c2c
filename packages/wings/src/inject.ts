/**
 * The Wings module (`WingsAdapter`) and its configuration. `attachWings(host, config)` (attach.ts)
 * attaches a `WingsLayer` to each chosen decoder layer through the host's `afterAttention` hook,
 * freezes the base model by structure and leaves only the learners (and, in stage 2, the routers)
 * trainable; `injectWings` is its deprecated predecessor.
 *
 * Per chosen layer ℓ, after `h = h_in + attn(norm1(h_in))` and before the MLP:
 *   stage 1:  h ← h + out_v·hasImage
 *   stage 2:  h ← h + w_v·out_v·hasImage + w_t·out_t,   (w_v, w_t) = router(P_ℓ)
 * (stage 2 with `referenceCompat.doubleAdd`: the update added twice, as the reference does), with
 * visual keys = the projector output of the sample's images (`ctx.visualTokens`, at the images'
 * positions) and textual keys = the layer-0 embeddings of the text tokens (`ctx.inputEmbeddings`
 * masked by `ctx.textMask`, causal by real position).
 *
 * The modules are registered in the host under the reference names
 * (`model.layers.{i}.attn_pool.*`, `model.layers.{i}.attn_t_pool.*`,
 * `model.layers.{i}.reweight_module.*`), so a reference checkpoint loads into the host in one call.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  assertModuleHost,
  assertBoolean,
  assertFiniteNumber,
  assertKnownKeys,
  assertOptionsObject,
  assertPositiveInt,
  type AttachedModule, type DecoderHooks, type ForwardContext, type LoadStateDictResult, type ModuleHost } from '@mllm/core';
import { CLEAN_COMPAT, REFERENCE_COMPAT, WingsLayer, type LearnerKeys, type ReferenceCompat, type WingsStage } from './wings-layer.js';
import { loadAdapter, saveAdapter } from './adapter-io.js';
import { buildReferenceTextualKeys, buildTextualKeys, buildVisualKeys, hasImageTokens, type WingsKeyContext } from './learner-keys.js';
import { attachWings } from './attach.js';

/** The host hooks a `WingsAdapter` drives (core's `DecoderHooks`, these members present). */
export type WingsHooks = Required<Pick<DecoderHooks, 'prepare' | 'afterAttention' | 'attentionProbsLayers' | 'requiresFullSequence' | 'namedModules'>>;

/** Both learners' keys for one forward (the same for every layer; `textual` is null in stage 1). */
export interface WingsForwardKeys {
  visual: LearnerKeys | null;
  textual: LearnerKeys | null;
}

/** @deprecated Use `WingsHooks` (a `Pick` of `@mllm/core`'s `DecoderHooks`); removed in the next minor version. */
export type WingsDecoderHooks = WingsHooks;

/** @deprecated Use `@mllm/core`'s `ModuleHost` (what `attachWings` takes); removed in the next minor version. */
export type WingsHostModel = ModuleHost;

/** The host dimensions Wings' defaults come from (`attachWings` reads them from `host.baseModelShape()`). */
export interface WingsHostDimensions {
  hiddenSize: number;
  numHeads: number;
  numLayers: number;
  ropeTheta: number;
}

export interface WingsConfig {
  /** 1: visual learners only (no router); 2: visual + textual learners and routers. */
  stage: WingsStage;
  /** Low-rank dimension r (reference `lora_dim`, 64 in the release). */
  rank: number;
  /** Decoder layers that get learners: indices, a RegExp tested on `model.layers.{i}`, or 'all' (default, as released). */
  layers?: number[] | RegExp | 'all';
  /** Router width = maximum key sequence length (default 4096, the release's). */
  routerMaxLength?: number;
  /** Defaults from the host's `baseModelShape()` (hidden_size, num_attention_heads, num_hidden_layers, rope_theta). */
  hiddenSize?: number;
  numHeads?: number;
  numLayers?: number;
  ropeTheta?: number;
  /** Std of the learners' down-projection init (default 0.02). */
  initStd?: number;
  /** Mask the visual learner causally by position (default false: unmasked, as the reference). */
  visualCausal?: boolean;
  /**
   * Reproduce the public reference's behaviour: `'reference'` (every switch, `REFERENCE_COMPAT`: what
   * the released checkpoints expect; `loadWingsCheckpoint`'s default), `'clean'` (none) or single
   * switches. Default here: `'clean'`.
   */
  referenceCompat?: ReferenceCompat | 'reference' | 'clean';
  /**
   * Leading tokens (system prompt and user header) the reference leaves out of image samples' text
   * keys (its `system_prompt_length`; Qwen1.5 release: 14). Needed by `misalignedTextMask`; with the
   * clean text keys, n > 0 leaves sequence positions `[0, n)` of image samples out of their keys.
   * Default 0: every text token is a key.
   */
  systemPromptLength?: number;
  /** Freeze the host model's own parameters (default true). */
  freezeBase?: boolean;
}

/** Fully resolved configuration (what `adapter_config.json` records). */
export interface ResolvedWingsConfig {
  stage: WingsStage;
  rank: number;
  layers: number[];
  routerMaxLength: number;
  hiddenSize: number;
  numHeads: number;
  numLayers: number;
  ropeTheta: number;
  initStd: number;
  visualCausal: boolean;
  referenceCompat: Required<ReferenceCompat>;
  systemPromptLength: number;
}

const WINGS_CONFIG_KEYS = [
  'stage', 'rank', 'layers', 'routerMaxLength', 'hiddenSize', 'numHeads', 'numLayers', 'ropeTheta', 'initStd', 'visualCausal',
  'referenceCompat', 'systemPromptLength', 'freezeBase',
];

/** Resolve defaults from the host and validate (errors name the field and value). */
export function resolveWingsConfig(config: WingsConfig, host?: WingsHostDimensions): ResolvedWingsConfig {
  assertOptionsObject('WingsConfig', 'config', config);
  // Nothing in a WingsConfig reaches a tfjs Layer: a Layer key (`name`, `trainable`, `dtype`, …) would be ignored, so it is unknown.
  assertKnownKeys('WingsConfig', config, WINGS_CONFIG_KEYS, { layerKeys: false });
  const compatIn: unknown = config.referenceCompat;
  if (compatIn !== undefined && typeof compatIn !== 'string') {
    assertOptionsObject('WingsConfig', 'referenceCompat', compatIn);
    assertKnownKeys('WingsConfig.referenceCompat', compatIn, ['doubleAdd', 'textOnlyNoRouter', 'misalignedTextMask'], { layerKeys: false });
    for (const [key, value] of Object.entries(compatIn)) assertBoolean('WingsConfig', `referenceCompat.${key}`, value);
  }
  for (const key of ['visualCausal', 'freezeBase'] as const) {
    const value: unknown = config[key];
    if (value !== undefined) assertBoolean('WingsConfig', key, value);
  }
  const initStd: unknown = config.initStd;
  if (initStd !== undefined) assertFiniteNumber('WingsConfig', 'initStd', initStd);
  if (config.stage !== 1 && config.stage !== 2) throw new Error(`WingsConfig: stage must be 1 or 2, got ${String(config.stage)}`);
  const pick = (key: 'hiddenSize' | 'numHeads' | 'numLayers' | 'ropeTheta'): number => {
    const value = config[key] ?? host?.[key];
    if (value === undefined) throw new Error(`WingsConfig: ${key} is required (no host model to take it from)`);
    if (host && config[key] !== undefined && config[key] !== host[key]) {
      throw new Error(`WingsConfig: ${key} ${config[key]} differs from the host model's ${host[key]}`);
    }
    return value;
  };
  const hiddenSize = pick('hiddenSize');
  const numHeads = pick('numHeads');
  const numLayers = pick('numLayers');
  const ropeTheta = pick('ropeTheta');
  assertPositiveInt('WingsConfig', 'rank', config.rank);
  assertPositiveInt('WingsConfig', 'numLayers', numLayers);
  const routerMaxLength = config.routerMaxLength ?? 4096;
  assertPositiveInt('WingsConfig', 'routerMaxLength', routerMaxLength);
  const selector = config.layers ?? 'all';
  let layers: number[];
  if (selector === 'all') layers = Array.from({ length: numLayers }, (_, i) => i);
  else if (selector instanceof RegExp) layers = Array.from({ length: numLayers }, (_, i) => i).filter((i) => selector.test(`model.layers.${i}`));
  else if (Array.isArray(selector)) {
    for (const i of selector) {
      if (!Number.isInteger(i) || i < 0 || i >= numLayers) throw new Error(`WingsConfig: layers entries must be integers in [0, ${numLayers}), got ${String(i)}`);
    }
    layers = [...new Set(selector)].sort((a, b) => a - b);
  } else throw new Error(`WingsConfig: layers must be an index list, a RegExp or 'all', got ${String(selector)}`);
  if (layers.length === 0) throw new Error(`WingsConfig: layers selects no decoder layer (${String(selector)})`);
  const setting = config.referenceCompat ?? 'clean';
  if (typeof setting === 'string' && setting !== 'reference' && setting !== 'clean') {
    throw new Error(`WingsConfig: referenceCompat must be 'reference', 'clean' or an object of switches, got ${JSON.stringify(setting)}`);
  }
  const compat: ReferenceCompat = setting === 'reference' ? REFERENCE_COMPAT : setting === 'clean' ? CLEAN_COMPAT : setting;
  const systemPromptLength = config.systemPromptLength ?? 0;
  if (!Number.isInteger(systemPromptLength) || systemPromptLength < 0) {
    throw new Error(`WingsConfig: systemPromptLength must be a non-negative integer, got ${String(systemPromptLength)}`);
  }
  if (compat.misalignedTextMask && config.systemPromptLength === undefined) {
    throw new Error('WingsConfig: referenceCompat.misalignedTextMask needs systemPromptLength (the reference excludes that many leading tokens of image samples from the text keys)');
  }
  return {
    stage: config.stage,
    rank: config.rank,
    layers,
    routerMaxLength,
    hiddenSize,
    numHeads,
    numLayers,
    ropeTheta,
    initStd: config.initStd ?? 0.02,
    visualCausal: config.visualCausal ?? false,
    referenceCompat: {
      doubleAdd: compat.doubleAdd ?? false,
      textOnlyNoRouter: compat.textOnlyNoRouter ?? false,
      misalignedTextMask: compat.misalignedTextMask ?? false,
    },
    systemPromptLength,
  };
}

/** The adapter's modules: child `model.layers.{i}` → `WingsLayer` (so names are the reference's). */
export class WingsAdapter extends Module {
  static readonly className = 'WingsAdapter';
  readonly config: ResolvedWingsConfig;
  private readonly byIndex = new Map<number, WingsLayer>();

  constructor(config: ResolvedWingsConfig) {
    super({ name: 'wings_adapter' });
    this.config = config;
    for (const i of config.layers) {
      const layer = new WingsLayer({
        hiddenSize: config.hiddenSize,
        numHeads: config.numHeads,
        rank: config.rank,
        ropeTheta: config.ropeTheta,
        stage: config.stage,
        routerMaxLength: config.routerMaxLength,
        initStd: config.initStd,
      });
      this.byIndex.set(i, this.addModule(`model.layers.${i}`, layer));
    }
    this.built = true;
  }

  /** The Wings modules of decoder layer `index`, or undefined. */
  layer(index: number): WingsLayer | undefined {
    return this.byIndex.get(index);
  }

  /** Stage-appropriate trainability: stage 1 trains `attn_pool` only; stage 2 trains everything. */
  resetTrainable(): void {
    for (const layer of this.byIndex.values()) {
      layer.setTrainable(true);
      if (this.config.stage === 1) layer.textualLearner.setTrainable(false);
    }
  }

  /**
   * Keys built by `prepare` for the forward whose context is the map key; its cleanup deletes the
   * entry. Keyed by context (not a single field) so a hand-driven `afterAttention` with another
   * context, or a nested forward, never sees another forward's keys.
   */
  private readonly preparedKeys = new WeakMap<object, WingsForwardKeys>();

  /**
   * The visual and textual keys of one forward (every layer reuses them: they depend only on the
   * context, not on the layer). Call inside a tidy.
   */
  buildKeys(ctx: WingsKeyContext): WingsForwardKeys {
    const c = this.config;
    const visual = buildVisualKeys(ctx, c.visualCausal);
    const textual =
      c.stage === 2
        ? c.referenceCompat.misalignedTextMask
          ? buildReferenceTextualKeys(ctx, c.systemPromptLength)
          : buildTextualKeys(ctx, c.systemPromptLength)
        : null;
    return { visual, textual };
  }

  /**
   * The host's per-forward `prepare` body: builds the learner keys once (inside the host's tidy and
   * under its gradient tape, so gradients reach `visualTokens` / `inputEmbeddings` through them) for
   * every layer's `afterAttention`; the returned cleanup drops them (the host's tidy disposes them).
   * Nothing is built when no layer has learners or `afterAttention` would not use them.
   */
  prepare(ctx: WingsKeyContext): (() => void) | undefined {
    if (this.byIndex.size === 0 || !this.usesKeys(ctx)) return undefined;
    this.preparedKeys.set(ctx, this.buildKeys(ctx));
    return () => {
      this.preparedKeys.delete(ctx);
    };
  }

  /** False where `afterAttention` returns early or throws (stage 1 without images; stage 2 on a cached step). */
  private usesKeys(ctx: WingsKeyContext): boolean {
    if (this.config.stage === 2) return ctx.isPrefill;
    return ctx.visualTokens != null && hasImageTokens(ctx);
  }

  /**
   * The per-layer update as a host `afterAttention` hook body: `residual [B, L, H]` → new residual,
   * or null when layer `index` has no learners (or stage 1 sees no image). Uses the keys `prepare`
   * built for this context, or builds them (a hand-driven call without `prepare`).
   */
  afterAttention(index: number, residual: tf.Tensor3D, attentionProbs: tf.Tensor4D | null, ctx: WingsKeyContext): tf.Tensor3D | null {
    const layer = this.byIndex.get(index);
    if (!layer) return null;
    const c = this.config;
    if (c.stage === 2 && !ctx.isPrefill) {
      throw new Error('Wings: the stage-2 textual learner needs the full sequence; run without KV cache (the hooks set requiresFullSequence)');
    }
    if (c.stage === 1 && !this.usesKeys(ctx)) return null;
    return tf.tidy(() => {
      const { visual, textual } = this.preparedKeys.get(ctx) ?? this.buildKeys(ctx);
      return layer.forward({
        residual,
        positions: ctx.positions,
        attentionProbs,
        hasImage: ctx.hasImage,
        visual,
        textual,
        referenceCompat: c.referenceCompat,
      });
    });
  }

  /** Host hooks driving this adapter. */
  hooks(): WingsHooks {
    const stage2 = this.config.stage === 2;
    return {
      prepare: (ctx: ForwardContext) => this.prepare(ctx),
      afterAttention: (index, args, ctx: ForwardContext) => this.afterAttention(index, args.residual, args.attentionProbs, ctx),
      attentionProbsLayers: stage2 ? [...this.config.layers] : [],
      // Stage 1 (visual keys only, unmasked or causal by position) gives the same result for a
      // cached decode step as for the full sequence; stage 2's textual keys need every earlier token.
      requiresFullSequence: stage2,
      namedModules: () => this.namedChildren(),
    };
  }

  /** `[model.layers.{i}.attn_pool, learner]`, … — the names the modules take in the host. */
  namedChildren(): Array<[string, Module]> {
    const out: Array<[string, Module]> = [];
    for (const [i, layer] of this.byIndex) {
      out.push([`model.layers.${i}.attn_pool`, layer.visualLearner]);
      out.push([`model.layers.${i}.attn_t_pool`, layer.textualLearner]);
      if (layer.router) out.push([`model.layers.${i}.reweight_module`, layer.router]);
    }
    return out;
  }

  override call(): tf.Tensor {
    throw new Error('WingsAdapter: runs through the host hooks (afterAttention)');
  }
}

/**
 * Handle returned by the deprecated `injectWings` and by `loadWingsCheckpoint`: the attached module
 * (`attachWings`' result, so core's `saveAdapter` / `saveAdapterFiles` take it) plus the old members.
 */
export interface WingsInjection extends AttachedModule<WingsAdapter, ResolvedWingsConfig> {
  /** @deprecated Use `module`. */
  readonly adapter: WingsAdapter;
  /**
   * @deprecated Use `@mllm/core`'s `saveAdapterFiles(handle, dir)` (one adapter format for every
   * module, loaded back in one call by `loadAdapterFiles`). This writes Wings' old layout
   * (`adapter_config.json` with `peft_type: 'WINGS'`).
   */
  saveAdapter(dir: string): Promise<void>;
  /**
   * @deprecated Use `@mllm/core`'s `loadAdapterFiles(host, dir)`, or `handle.loadStateDict` for weights
   * into this module. Loads the weights of an adapter directory in either layout (strict by default).
   */
  loadAdapter(dir: string, options?: { strict?: boolean }): Promise<LoadStateDictResult>;
}

/** `attached` with the deprecated `WingsInjection` members. */
export function wingsInjection(attached: AttachedModule<WingsAdapter, ResolvedWingsConfig>): WingsInjection {
  const adapter = attached.module;
  return {
    type: attached.type,
    module: adapter,
    config: attached.config,
    host: attached.host,
    get isAttached() {
      return attached.isAttached;
    },
    namedModules: () => attached.namedModules(),
    moduleRecord: () => attached.moduleRecord(),
    stateDict: () => attached.stateDict(),
    loadStateDict: (dict, options) => attached.loadStateDict(dict, options),
    remove: () => attached.remove(),
    adapter,
    saveAdapter: (dir) => saveAdapter(adapter, dir),
    loadAdapter: (dir, options) => loadAdapter(adapter, dir, options),
  };
}

/**
 * @deprecated Use `attachWings(host, config)` (same config, same behaviour; save and load with
 * `@mllm/core`'s `saveAdapter` / `loadAdapter`). Removed in the next minor version.
 *
 * Attach Wings learners to `model`'s chosen decoder layers, freeze the base model (by structure)
 * and make the stage's Wings modules trainable.
 */
export function injectWings(model: ModuleHost, config: WingsConfig): WingsInjection {
  assertModuleHost('injectWings', model);
  return wingsInjection(attachWings(model, config));
}
