/**
 * Attaching VPG-C to a host model, on `@mllm/core`'s attach contract (`attachModule`): only the five
 * VPG-C tensors train; the host (LLM, vision tower, VPG) is frozen by structure (`setTrainable(false)`),
 * and the hook runs at the input of decoder layer `updateLayer` on prefill passes only (cached decode
 * steps never re-run it).
 *
 * State-dict names: the reference keeps VPG-C inside the LLM's `LlamaModel` (`llama_model.model.query_tokens`,
 * `llama_model.model.{qformer_proj,llm_proj}.*`, beside `llama_model.model.layers.*`). The host's
 * decoder is `model.*` (`model.layers.*`, `model.embed_tokens.*`), so VPG-C is registered as `model`
 * and its tensors read `model.query_tokens`, `model.qformer_proj.{weight,bias}`, `model.llm_proj.{weight,bias}`.
 *
 * The record saved with an adapter (`saveAdapter` / a host's `config.json`) names the fields like
 * the reference's config (`update_layer`, `num_query_token`) plus the widths and the dropout switch.
 */
import {
  assertBoolean,
  assertKnownKeys,
  assertModuleHost,
  assertOptionsObject,
  attachModule,
  describeValue,
  type AttachedModule,
  type Module,
  type ModuleHost,
  type ModuleRecord,
} from '@mllm/core';
import { name as packageName, version as packageVersion } from '../package.json';
import { QFormerVPG } from './qformer-vpg.js';
import { VPGC } from './vpgc.js';
import { recordConfig, recordUpdateLayer, resolveUpdateLayer } from './attach-shared.js';
import type { VPGCDecoderHooks } from './hook-types.js';

/** `module_type` of VPG-C in adapter and host files. */
export const VPGC_MODULE_TYPE = 'vpgc';

/** Name of VPG-C in the host's state dict: the host's decoder (the reference's `llama_model.model`). */
export const VPGC_HOST_MODULE_NAME = 'model';

export interface AttachVPGCConfig {
  /** The host's VPG (default: the host's projector when it is a `QFormerVPG`). */
  vpg?: QFormerVPG;
  /** 0-based layer at whose input the hook runs (default `⌊numLayers/2⌋`: 16 of 32). */
  updateLayer?: number;
  /**
   * @deprecated The host's depth is read from `host.baseModelShape().num_hidden_layers`; when given,
   * it must equal that.
   */
  numLayers?: number;
  /** Reference behaviour: Q-Former dropout stays on at inference (default false). */
  dropoutAtInference?: boolean;
  /** Use this VPGC (e.g. with loaded weights) instead of creating a fresh zero-initialised one. */
  vpgc?: VPGC;
  /** Freeze the host's own parameters and the VPG (default true). */
  freezeBase?: boolean;
}

/** The resolved configuration of an attached VPG-C (`attached.config`). */
export interface VPGCResolvedConfig {
  /** 0-based decoder layer at whose input the hook runs. */
  updateLayer: number;
  /** Number of Q-Former queries `Nq`. */
  numQueryTokens: number;
  /** Q-Former width `Dq`. */
  qformerWidth: number;
  /** LLM hidden width `H`. */
  llmHiddenSize: number;
  /** Q-Former dropout on at inference (the VPG's switch) when attached. */
  dropoutAtInference: boolean;
}

/** The reference-named record of a VPG-C (`adapter_config.json`'s `config`). */
export interface VPGCReferenceConfig {
  /** Cheetah's `update_layer` (0-based input of that layer; 16 for the 32-layer LLMs). */
  update_layer: number;
  /** Cheetah's `num_query_token`. */
  num_query_token: number;
  /** `Qformer.config.hidden_size` (`Dq`). */
  qformer_hidden_size: number;
  /** The LLM's `hidden_size` (`H`). */
  llm_hidden_size: number;
  /** The reference never calls `.eval()`: true reproduces its dropout at inference. */
  dropout_at_inference: boolean;
}

/** What `attachVPGC` returns: core's `AttachedModule` (plus the fields of the previous release, deprecated). */
export interface AttachedVPGC extends AttachedModule<VPGC, VPGCResolvedConfig> {
  /** @deprecated Use `module`. */
  readonly vpgc: VPGC;
  /**
   * @deprecated The hook callbacks (`beforeLayer` is called through this object, so replacing it
   * here still takes effect). Attach with `attachVPGC` instead of passing hooks around.
   */
  readonly hooks: VPGCDecoderHooks;
}

/**
 * The hook object for `vpgc`, for hosts that take hooks directly; VPG-C registers as `model`
 * (`model.query_tokens`, …, see the file comment).
 * @deprecated Use `attachVPGC(host, { vpgc })`, which also freezes the host and records the module.
 */
export function vpgcHooks(vpgc: VPGC): VPGCDecoderHooks {
  return {
    beforeLayer: (layerIndex, hidden, ctx) => vpgc.beforeLayer(layerIndex, hidden, ctx),
    requiresFullSequence: false,
    namedModules: (): Array<[string, Module]> => [[VPGC_HOST_MODULE_NAME, vpgc]],
  };
}

const CONFIG_KEYS = ['vpg', 'updateLayer', 'numLayers', 'dropoutAtInference', 'vpgc', 'freezeBase'] as const;

/** The reference-named record of a resolved config. */
export function vpgcReferenceConfig(config: VPGCResolvedConfig): VPGCReferenceConfig {
  return {
    update_layer: config.updateLayer,
    num_query_token: config.numQueryTokens,
    qformer_hidden_size: config.qformerWidth,
    llm_hidden_size: config.llmHiddenSize,
    dropout_at_inference: config.dropoutAtInference,
  };
}

/**
 * Attach VPG-C to `host` (a `ModuleHost` such as `HostMLLM` whose projector is a `QFormerVPG`, or
 * pass `config.vpg`): create a zero-initialised `VPGC` (or take `config.vpgc`), freeze the host and
 * the VPG, and hook the input of decoder layer `updateLayer`. VPG-C's tensors appear in the host's
 * state dict as `model.query_tokens`, `model.qformer_proj.*`, `model.llm_proj.*`. Save it with
 * core's `saveAdapter(attached)`; `loadAdapter(host, files)` attaches and loads it in one call.
 */
export function attachVPGC(host: ModuleHost, config: AttachVPGCConfig = {}): AttachedVPGC {
  assertModuleHost('attachVPGC', host);
  assertOptionsObject('attachVPGC', 'config', config as unknown); // a cast: keep config's own type
  // The config never reaches a tfjs Layer: a Layer key (`name`, `trainable`, …) would be ignored, so it is unknown.
  assertKnownKeys('attachVPGC', config, CONFIG_KEYS, { layerKeys: false });
  const shape = host.baseModelShape();
  const numLayers = shape.num_hidden_layers;
  if (config.numLayers !== undefined && config.numLayers !== numLayers) {
    throw new Error(`attachVPGC: config.numLayers must equal the host's num_hidden_layers ${numLayers} (or be left out), got ${describeValue(config.numLayers)}`);
  }
  if (config.vpgc !== undefined && !(config.vpgc instanceof VPGC)) {
    throw new Error(`attachVPGC: config.vpgc must be a VPGC, got ${describeValue(config.vpgc)}`);
  }
  const candidate = config.vpg ?? config.vpgc?.vpg ?? host.projector;
  if (!(candidate instanceof QFormerVPG)) {
    throw new Error('attachVPGC: config.vpg must be a QFormerVPG (or the host projector must be one), got ' +
      (candidate === undefined ? 'undefined' : ((candidate as object).constructor?.name ?? typeof candidate)) +
      '; for a LLaVA-style host (per-token projector such as mlp2x_gelu) use attachLinearVPGC, the paper\'s linear-VPG variant');
  }
  const vpg = candidate;
  if (config.vpgc && config.vpgc.vpg !== vpg) throw new Error('attachVPGC: config.vpgc re-queries another VPG than config.vpg / the host projector');
  const updateLayer = resolveUpdateLayer('attachVPGC', config.updateLayer, config.vpgc?.updateLayer, numLayers);
  if (config.dropoutAtInference !== undefined) assertBoolean('attachVPGC', 'config.dropoutAtInference', config.dropoutAtInference);
  if (config.freezeBase !== undefined) assertBoolean('attachVPGC', 'config.freezeBase', config.freezeBase);
  const llmHiddenSize = config.vpgc?.llmHiddenSize ?? vpg.llmHiddenSize;
  if (llmHiddenSize !== shape.hidden_size) {
    throw new Error(`attachVPGC: VPG-C's LLM width must equal the host's hidden_size ${shape.hidden_size}, got ${llmHiddenSize}`);
  }
  const vpgc = config.vpgc ?? new VPGC({ vpg, updateLayer });
  const resolved: VPGCResolvedConfig = {
    updateLayer,
    numQueryTokens: vpgc.numQueryTokens,
    qformerWidth: vpgc.qformerWidth,
    llmHiddenSize: vpgc.llmHiddenSize,
    dropoutAtInference: config.dropoutAtInference ?? vpgc.dropoutAtInference,
  };
  const hooks = vpgcHooks(vpgc);
  const freezeBase = config.freezeBase ?? true;
  let attached: AttachedModule<VPGC, VPGCResolvedConfig>;
  try {
    attached = attachModule('attachVPGC', host, {
      type: VPGC_MODULE_TYPE,
      packageName,
      version: packageVersion,
      module: vpgc,
      config: resolved,
      referenceConfig: { ...vpgcReferenceConfig(resolved) },
      // Through `hooks`, so the deprecated `attached.hooks.beforeLayer` stays the one that runs.
      hooks: { beforeLayer: (layer, hidden, ctx) => hooks.beforeLayer(layer, hidden, ctx), requiresFullSequence: false },
      namedModules: hooks.namedModules(),
      freezeBase,
      afterAttach: () => {
        if (freezeBase) vpg.setTrainable(false); // also when the VPG is not the host's child (config.vpg)
        vpgc.dropoutAtInference = resolved.dropoutAtInference; // the VPG's switch (both Q-Former passes)
        vpgc.setTrainable(true);
      },
    });
  } catch (error) {
    if (!config.vpgc) vpgc.dispose(); // created here: nothing leaks from a failed attach
    throw error;
  }
  // A getter keeps `isAttached` live (a spread would copy its value once).
  return Object.defineProperties(attached as AttachedVPGC, {
    vpgc: { value: vpgc, enumerable: false },
    hooks: { value: hooks, enumerable: false },
  });
}

const RECORD_KEYS: ReadonlyArray<keyof VPGCReferenceConfig> = [
  'update_layer', 'num_query_token', 'qformer_hidden_size', 'llm_hidden_size', 'dropout_at_inference',
];

/**
 * Rebuild VPG-C from a record written by `saveAdapter` / a saved host (`config` in reference names)
 * and attach it to `host` (whose projector must be the `QFormerVPG` it was trained with). Every
 * field is checked against the host before anything is attached.
 */
export function attachVPGCFromRecord(host: ModuleHost, record: ModuleRecord): AttachedVPGC {
  const owner = 'attachVPGC (from a saved record)';
  const config = recordConfig(owner, host, record, RECORD_KEYS);
  const vpg = host.projector;
  if (!(vpg instanceof QFormerVPG)) {
    throw new Error(`${owner}: the host's projector must be a QFormerVPG (VPG-C re-queries it), got ${vpg === undefined ? 'undefined' : ((vpg as object).constructor?.name ?? typeof vpg)}`);
  }
  const { num_hidden_layers: numLayers } = host.baseModelShape();
  const expected: Record<string, number> = {
    num_query_token: vpg.numQueryTokens,
    qformer_hidden_size: vpg.qformerWidth,
    llm_hidden_size: vpg.llmHiddenSize,
  };
  for (const [key, value] of Object.entries(expected)) {
    if (config[key as keyof VPGCReferenceConfig] !== value) {
      throw new Error(`${owner}: config.${key} must equal the host VPG's ${value}, got ${describeValue(config[key as keyof VPGCReferenceConfig])}`);
    }
  }
  const layer = recordUpdateLayer(owner, config.update_layer, numLayers);
  assertBoolean(owner, 'config.dropout_at_inference', config.dropout_at_inference);
  return attachVPGC(host, { updateLayer: layer, dropoutAtInference: config.dropout_at_inference });
}
