/**
 * The previous release's VPG-C adapter file (deprecated; kept for one minor version so files written
 * with it still load): the five trainable tensors under their reference names
 * (`llama_model.model.query_tokens`, `…qformer_proj.{weight,bias}`, `…llm_proj.{weight,bias}`, PyTorch
 * layout, F32) in safetensors, with the configuration as JSON in the `__metadata__` entry `vpgc_config`.
 *
 * Replacement: `@mllm/core`'s one adapter format for every module,
 * `saveAdapter(attachVPGC(host))` → `{ config, weights }` and `loadAdapter(host, files)` (or
 * `saveAdapterFiles` / `loadAdapterFiles` for a directory), which also records the base model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeStateDict, loadSafetensors, saveSafetensors, disposeTensorMap } from '@mllm/core';
import { loadVPGCStateDict, vpgcStateDict } from './state-dict-io.js';
import type { VPGC } from './vpgc.js';

/**
 * What a previous-release adapter file records besides the tensors.
 * @deprecated Core's `adapter_config.json` (`AdapterConfig`) replaces it.
 */
export interface VPGCAdapterConfig {
  format: 'mllm-vpgc';
  version: 1;
  updateLayer: number;
  llmHiddenSize: number;
  qformerWidth: number;
  numQueryTokens: number;
  dropoutAtInference: boolean;
}

const METADATA_KEY = 'vpgc_config';

/**
 * The previous-release adapter configuration of `vpgc`.
 * @deprecated Use `attachVPGC(host, …).moduleRecord()` (reference-named) or core's `adapterConfig(attached)`.
 */
export function vpgcAdapterConfig(vpgc: VPGC): VPGCAdapterConfig {
  return {
    format: 'mllm-vpgc',
    version: 1,
    updateLayer: vpgc.updateLayer,
    llmHiddenSize: vpgc.llmHiddenSize,
    qformerWidth: vpgc.qformerWidth,
    numQueryTokens: vpgc.numQueryTokens,
    dropoutAtInference: vpgc.dropoutAtInference,
  };
}

/**
 * Serialise the five VPG-C tensors and the config to safetensors bytes (previous-release format).
 * @deprecated Use `saveAdapter(attached)` from `@mllm/core` with `attached = attachVPGC(host)`.
 */
export function saveAdapter(vpgc: VPGC): Uint8Array {
  const tensors = vpgcStateDict(vpgc);
  try {
    return saveSafetensors(tensors, { [METADATA_KEY]: JSON.stringify(vpgcAdapterConfig(vpgc)) });
  } finally {
    disposeStateDict(tensors);
  }
}

/**
 * Parse and validate the config stored in previous-release adapter bytes.
 * @deprecated Use `parseAdapterConfig` / `readAdapterConfigFile` from `@mllm/core`.
 */
export function readAdapterConfig(metadata: Record<string, string> | null): VPGCAdapterConfig {
  const text = metadata?.[METADATA_KEY];
  if (typeof text !== 'string') throw new Error(`loadAdapter: the file has no '${METADATA_KEY}' metadata entry`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`loadAdapter: '${METADATA_KEY}' is not valid JSON: ${(error as Error).message}`);
  }
  const config = parsed as Partial<VPGCAdapterConfig>;
  if (!config || typeof config !== 'object' || config.format !== 'mllm-vpgc' || config.version !== 1) {
    throw new Error(`loadAdapter: expected format 'mllm-vpgc' version 1, got ${text.slice(0, 200)}`);
  }
  for (const key of ['updateLayer', 'llmHiddenSize', 'qformerWidth', 'numQueryTokens'] as const) {
    if (!Number.isInteger(config[key])) throw new Error(`loadAdapter: config.${key} must be an integer, got ${String(config[key])}`);
  }
  return { ...config, dropoutAtInference: config.dropoutAtInference === true } as VPGCAdapterConfig;
}

/**
 * Load previous-release adapter bytes into `vpgc`. The stored sizes and `updateLayer` must match `vpgc`
 * (errors name the field, the expected and the actual value); nothing is assigned on error.
 * @deprecated Use `loadAdapter(host, files)` from `@mllm/core`, which attaches VPG-C and loads it in one call.
 */
export function loadAdapter(vpgc: VPGC, bytes: Uint8Array): VPGCAdapterConfig {
  const { tensors, metadata } = loadSafetensors(bytes);
  try {
    const config = readAdapterConfig(metadata);
    const expected = vpgcAdapterConfig(vpgc);
    for (const key of ['updateLayer', 'llmHiddenSize', 'qformerWidth', 'numQueryTokens'] as const) {
      if (config[key] !== expected[key]) {
        throw new Error(`loadAdapter: ${key} of the adapter is ${config[key]}, this VPGC has ${expected[key]}`);
      }
    }
    loadVPGCStateDict(vpgc, tensors);
    vpgc.dropoutAtInference = config.dropoutAtInference;
    return config;
  } finally {
    disposeTensorMap(tensors);
  }
}

export type { tf };
