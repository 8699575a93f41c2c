/**
 * Attach the linear-VPG variant of VPG-C (`LinearVPGC`) to a LLaVA-style host, on `@mllm/core`'s attach
 * contract (`attachModule`), like `attachVPGC` does for Q-Former hosts: only `guidance_proj` and
 * `visual_proj` train, the host (LLM, vision tower, projector) is frozen by structure, and the hook
 * runs at the input of decoder layer `updateLayer` on prefill passes only.
 *
 * State-dict names: registered as `model` beside the decoder, like the Q-Former variant
 * (`model.{qformer_proj,llm_proj}`): `model.guidance_proj.weight` `[H, H]` and
 * `model.visual_proj.weight` `[H, Dv]`. No reference checkpoint exists for this variant; these names
 * are this package's.
 *
 * The record saved with an adapter (`saveAdapter` / a host's `config.json`) is kind `vpgc_linear`
 * with `update_layer`, `llm_hidden_size` and `vision_hidden_size`.
 */
import {
  assertBoolean,
  assertKnownKeys,
  assertModuleHost,
  assertOptionsObject,
  attachModule,
  describeValue,
  type AttachedModule,
  type ModuleHost,
  type ModuleRecord,
} from '@mllm/core';
import { name as packageName, version as packageVersion } from '../package.json';
import { QFormerVPG } from './qformer-vpg.js';
import { LinearVPGC } from './linear-vpgc.js';
import { recordConfig, recordUpdateLayer, resolveUpdateLayer } from './attach-shared.js';
import { VPGC_HOST_MODULE_NAME } from './attach.js';

/** `module_type` of the linear VPG-C in adapter and host files. */
export const LINEAR_VPGC_MODULE_TYPE = 'vpgc_linear';

export interface AttachLinearVPGCConfig {
  /** 0-based layer at whose input the hook runs (default `⌊numLayers/2⌋`, as `attachVPGC`). */
  updateLayer?: number;
  /** Use this `LinearVPGC` (e.g. with loaded weights) instead of creating a fresh one. */
  vpgc?: LinearVPGC;
  /** Freeze the host's own parameters (default true). */
  freezeBase?: boolean;
}

/** The resolved configuration of an attached linear VPG-C (`attached.config`). */
export interface LinearVPGCResolvedConfig {
  /** 0-based decoder layer at whose input the hook runs. */
  updateLayer: number;
  /** LLM hidden width `H`. */
  llmHiddenSize: number;
  /** Width `Dv` of the vision features fed to the projector. */
  visionHiddenSize: number;
}

/** The record of a linear VPG-C (`adapter_config.json`'s `config`), in the Q-Former variant's naming style. */
export interface LinearVPGCReferenceConfig {
  /** 0-based input of that decoder layer (the Q-Former variant's `update_layer`). */
  update_layer: number;
  /** The LLM's `hidden_size` (`H`). */
  llm_hidden_size: number;
  /** The host's `vision_hidden_size` (`Dv`, the features fed to the projector). */
  vision_hidden_size: number;
}

/** What `attachLinearVPGC` returns: core's `AttachedModule`. */
export type AttachedLinearVPGC = AttachedModule<LinearVPGC, LinearVPGCResolvedConfig>;

const CONFIG_KEYS = ['updateLayer', 'vpgc', 'freezeBase'] as const;

/** The record of a resolved config. */
export function linearVpgcReferenceConfig(config: LinearVPGCResolvedConfig): LinearVPGCReferenceConfig {
  return { update_layer: config.updateLayer, llm_hidden_size: config.llmHiddenSize, vision_hidden_size: config.visionHiddenSize };
}

/**
 * Attach the linear-VPG variant of VPG-C to `host`: any `ModuleHost` with a vision tower whose projector
 * maps each feature row to one token (LLaVA's `linear` / `mlp2x_gelu`: @mllm/models' `LlavaModel`, `HostMLLM`).
 * Creates a `LinearVPGC` (`guidance_proj` zero, so the host's output is unchanged until trained) or
 * takes `config.vpgc`, freezes the host and hooks the input of decoder layer `updateLayer`. Its tensors
 * appear in the host's state dict as `model.guidance_proj.weight` and `model.visual_proj.weight`. Save it
 * with core's `saveAdapter(attached)`; `loadAdapter(host, files)` attaches and loads it in one call.
 * A host whose projector is a `QFormerVPG` is refused: use `attachVPGC`, the paper's Q-Former variant.
 */
export function attachLinearVPGC(host: ModuleHost, config: AttachLinearVPGCConfig = {}): AttachedLinearVPGC {
  const owner = 'attachLinearVPGC';
  assertModuleHost(owner, host);
  assertOptionsObject(owner, 'config', config as unknown); // a cast: keep config's own type
  // The config never reaches a tfjs Layer: a Layer key (`name`, `trainable`, …) would be ignored, so it is unknown.
  assertKnownKeys(owner, config, CONFIG_KEYS, { layerKeys: false });
  if (host.projector instanceof QFormerVPG) {
    throw new Error(`${owner}: the host's projector is a QFormerVPG; the linear VPG-C is for per-token projectors (LLaVA's linear / mlp2x_gelu). Use attachVPGC, which re-queries the Q-Former`);
  }
  const shape = host.baseModelShape();
  const numLayers = shape.num_hidden_layers;
  const visionHiddenSize = shape.vision_hidden_size;
  if (visionHiddenSize === undefined) {
    throw new Error(`${owner}: the host has no vision tower (baseModelShape().vision_hidden_size is absent); VPG-C needs image features`);
  }
  if (config.vpgc !== undefined && !(config.vpgc instanceof LinearVPGC)) {
    throw new Error(`${owner}: config.vpgc must be a LinearVPGC, got ${describeValue(config.vpgc)}`);
  }
  const updateLayer = resolveUpdateLayer(owner, config.updateLayer, config.vpgc?.updateLayer, numLayers);
  if (config.vpgc) {
    if (config.vpgc.llmHiddenSize !== shape.hidden_size) {
      throw new Error(`${owner}: config.vpgc.llmHiddenSize must equal the host's hidden_size ${shape.hidden_size}, got ${config.vpgc.llmHiddenSize}`);
    }
    if (config.vpgc.visionHiddenSize !== visionHiddenSize) {
      throw new Error(`${owner}: config.vpgc.visionHiddenSize must equal the host's vision_hidden_size ${visionHiddenSize}, got ${config.vpgc.visionHiddenSize}`);
    }
  }
  if (config.freezeBase !== undefined) assertBoolean(owner, 'config.freezeBase', config.freezeBase);
  const vpgc = config.vpgc ?? new LinearVPGC({ llmHiddenSize: shape.hidden_size, visionHiddenSize, updateLayer });
  const resolved: LinearVPGCResolvedConfig = { updateLayer, llmHiddenSize: vpgc.llmHiddenSize, visionHiddenSize: vpgc.visionHiddenSize };
  try {
    return attachModule(owner, host, {
      type: LINEAR_VPGC_MODULE_TYPE,
      packageName,
      version: packageVersion,
      module: vpgc,
      config: resolved,
      referenceConfig: { ...linearVpgcReferenceConfig(resolved) },
      hooks: { beforeLayer: (layer, hidden, ctx) => vpgc.beforeLayer(layer, hidden, ctx), requiresFullSequence: false },
      namedModules: [[VPGC_HOST_MODULE_NAME, vpgc]],
      freezeBase: config.freezeBase ?? true,
      afterAttach: () => vpgc.setTrainable(true),
    });
  } catch (error) {
    if (!config.vpgc) vpgc.dispose(); // created here: nothing leaks from a failed attach
    throw error;
  }
}

const RECORD_KEYS: ReadonlyArray<keyof LinearVPGCReferenceConfig> = ['update_layer', 'llm_hidden_size', 'vision_hidden_size'];

/**
 * Rebuild a linear VPG-C from a record written by `saveAdapter` / a saved host and attach it to `host`.
 * Every field is checked against the host before anything is attached.
 */
export function attachLinearVPGCFromRecord(host: ModuleHost, record: ModuleRecord): AttachedLinearVPGC {
  const owner = 'attachLinearVPGC (from a saved record)';
  const config = recordConfig(owner, host, record, RECORD_KEYS);
  const shape = host.baseModelShape();
  const expected: Record<string, number | undefined> = { llm_hidden_size: shape.hidden_size, vision_hidden_size: shape.vision_hidden_size };
  for (const [key, value] of Object.entries(expected)) {
    if (config[key as keyof LinearVPGCReferenceConfig] !== value) {
      throw new Error(`${owner}: config.${key} must equal the host's ${key} ${describeValue(value)}, got ${describeValue(config[key as keyof LinearVPGCReferenceConfig])}`);
    }
  }
  return attachLinearVPGC(host, { updateLayer: recordUpdateLayer(owner, config.update_layer, shape.num_hidden_layers) });
}
