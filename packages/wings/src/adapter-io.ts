/**
 * Adapter files (Node): a directory with `adapter_model.safetensors` (only the Wings learner and
 * router weights, under the reference names `model.layers.{i}.attn_pool.q_proj.0.weight`, …,
 * PyTorch layout) and `adapter_config.json` (the resolved Wings configuration, snake_case).
 */
import { readSafetensorsFile, writeSafetensorsFile, disposeStateDict, type LoadStateDictResult, type FloatStorageDtype } from '@mllm/core';
import type { ResolvedWingsConfig, WingsAdapter } from './inject.js';

export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';

/** `adapter_config.json` contents. */
export interface WingsAdapterConfigFile {
  peft_type: 'WINGS';
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
  reference_compat: { double_add: boolean; text_only_no_router: boolean; misaligned_text_mask: boolean };
  system_prompt_length: number;
}

export function toAdapterConfigFile(c: ResolvedWingsConfig): WingsAdapterConfigFile {
  return {
    peft_type: 'WINGS',
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

export function fromAdapterConfigFile(f: WingsAdapterConfigFile): ResolvedWingsConfig {
  if (!f || f.peft_type !== 'WINGS') throw new Error(`adapter_config.json: peft_type must be "WINGS", got ${JSON.stringify(f?.peft_type)}`);
  return {
    stage: f.stage,
    rank: f.lora_dim,
    layers: [...f.target_layers],
    routerMaxLength: f.router_max_length,
    hiddenSize: f.hidden_size,
    numHeads: f.num_attention_heads,
    numLayers: f.num_hidden_layers,
    ropeTheta: f.rope_theta,
    initStd: f.init_std,
    visualCausal: f.visual_causal,
    referenceCompat: {
      doubleAdd: f.reference_compat.double_add,
      textOnlyNoRouter: f.reference_compat.text_only_no_router,
      misalignedTextMask: f.reference_compat.misaligned_text_mask,
    },
    systemPromptLength: f.system_prompt_length,
  };
}

function join(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** Write the adapter's weights and config into `dir` (created if needed). */
export async function saveAdapter(adapter: WingsAdapter, dir: string, options: { floatDtype?: FloatStorageDtype } = {}): Promise<void> {
  const fs = await import('node:fs/promises');
  await fs.mkdir(dir, { recursive: true });
  const weights = adapter.stateDict();
  try {
    await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME), weights, { format: 'pt' }, { floatDtype: options.floatDtype ?? 'F32' });
  } finally {
    disposeStateDict(weights);
  }
  await fs.writeFile(join(dir, ADAPTER_CONFIG_NAME), `${JSON.stringify(toAdapterConfigFile(adapter.config), null, 2)}\n`);
}

/** Read `dir/adapter_config.json`. */
export async function readAdapterConfig(dir: string): Promise<ResolvedWingsConfig> {
  const fs = await import('node:fs/promises');
  const text = await fs.readFile(join(dir, ADAPTER_CONFIG_NAME), 'utf8');
  return fromAdapterConfigFile(JSON.parse(text) as WingsAdapterConfigFile);
}

/**
 * Load `dir`'s weights into `adapter` (strict by default: missing/unexpected keys are errors, so
 * loading a stage-1 adapter into a stage-2 one needs `strict: false`, which leaves the routers at
 * their init as the reference does). The recorded shapes must match the adapter's.
 */
export async function loadAdapter(adapter: WingsAdapter, dir: string, options: { strict?: boolean } = {}): Promise<LoadStateDictResult> {
  const recorded = await readAdapterConfig(dir);
  const c = adapter.config;
  for (const key of ['hiddenSize', 'numHeads', 'rank', 'routerMaxLength'] as const) {
    if (recorded[key] !== c[key]) throw new Error(`loadAdapter: ${dir} has ${key} ${recorded[key]}, the adapter has ${c[key]}`);
  }
  const { tensors } = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME));
  try {
    return adapter.loadStateDict(tensors, { strict: options.strict ?? true });
  } finally {
    disposeStateDict(tensors);
  }
}
