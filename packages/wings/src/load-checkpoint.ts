/**
 * Loading a released Wings checkpoint (Node): one call that attaches learners shaped like the
 * checkpoint's to a host model and loads them, reproducing the reference by default.
 *
 * From the checkpoint: the layers (every `model.layers.{i}.attn_pool.*`), the stage (2 when it has
 * `reweight_module` weights), the rank (`attn_pool.q_proj.0.weight [r, H]`), the router width
 * (`reweight_module.linear.weight [2, maxLength]`) and, from its `config.json` (what the reference's
 * `save_pretrained` wrote), `system_prompt_length` and `lora_dim`. The compat switches default to
 * `'reference'` (`REFERENCE_COMPAT`): the released weights were trained with the reference's
 * doubled stage-2 update and its text keys, so the clean design gives other outputs with them.
 */
import { assertModuleHost, disposeStateDict, loadShardedCheckpoint, type ModuleHost, type StateDict } from '@mllm/core';
import { wingsInjection, type WingsConfig, type WingsInjection } from './inject.js';
import { attachWings } from './attach.js';

/** The checkpoint tensors `loadWingsCheckpoint` reads: the learners' and routers'. */
export const WINGS_TENSOR_PATTERN = /^model\.layers\.\d+\.(attn_pool|attn_t_pool|reweight_module)\./;

export interface LoadWingsCheckpointOptions
  extends Omit<WingsConfig, 'stage' | 'rank' | 'layers' | 'routerMaxLength' | 'referenceCompat'> {
  /**
   * `'reference'` (default: as the released checkpoints were trained and evaluated), `'clean'` (the
   * clean design, an explicit choice) or single switches.
   */
  referenceCompat?: WingsConfig['referenceCompat'];
}

/** What `loadWingsCheckpoint` found in the checkpoint. */
export interface WingsCheckpointShape {
  stage: 1 | 2;
  rank: number;
  layers: number[];
  routerMaxLength?: number;
}

/** Stage, rank, layers and router width from the checkpoint's Wings tensors (names and shapes). */
export function wingsCheckpointShape(tensors: StateDict, source = 'the checkpoint'): WingsCheckpointShape {
  const layers = new Set<number>();
  let stage: 1 | 2 = 1;
  let rank: number | undefined;
  let routerMaxLength: number | undefined;
  for (const [name, tensor] of tensors) {
    const match = /^model\.layers\.(\d+)\.(attn_pool|attn_t_pool|reweight_module)\.(.*)$/.exec(name);
    if (!match) continue;
    const [, index, module, rest] = match;
    if (module === 'attn_pool') layers.add(Number(index));
    if (module === 'reweight_module') {
      stage = 2;
      if (rest === 'linear.weight') {
        const width = tensor.shape[1];
        if (routerMaxLength !== undefined && width !== routerMaxLength) {
          throw new Error(`loadWingsCheckpoint: ${name} has width ${width}, another router has ${routerMaxLength} (${source})`);
        }
        routerMaxLength = width;
      }
    }
    if (module === 'attn_pool' && rest === 'q_proj.0.weight') rank = tensor.shape[0];
  }
  if (layers.size === 0 || rank === undefined) {
    throw new Error(`loadWingsCheckpoint: ${source} has no Wings learner weights (model.layers.{i}.attn_pool.q_proj.0.weight)`);
  }
  return { stage, rank, layers: [...layers].sort((a, b) => a - b), routerMaxLength };
}

/**
 * Attach Wings learners shaped like the checkpoint at `path` (a directory with
 * `model.safetensors` or a sharded index, an index file or one `.safetensors` file) to `model`
 * (`attachWings`) and load their weights strictly. The result is the attached module (save it with
 * `@mllm/core`'s `saveAdapter` / `saveAdapterFiles`) with the deprecated `WingsInjection` members. Reproduces the reference by default (`referenceCompat: 'reference'`,
 * `systemPromptLength` from the checkpoint's `config.json`); pass `referenceCompat: 'clean'` for
 * the clean design. Nothing stays attached when loading fails.
 */
export async function loadWingsCheckpoint(
  model: ModuleHost,
  path: string,
  options: LoadWingsCheckpointOptions = {},
): Promise<WingsInjection> {
  assertModuleHost('loadWingsCheckpoint', model);
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const stats = await fs.stat(path).catch((error: Error) => {
    throw new Error(`loadWingsCheckpoint: could not read ${JSON.stringify(path)}: ${error.message}`);
  });
  const configPath = nodePath.join(stats.isDirectory() ? path : nodePath.dirname(path), 'config.json');
  let referenceConfig: { lora_dim?: unknown; system_prompt_length?: unknown } = {};
  const configText = await fs.readFile(configPath, 'utf8').catch(() => null);
  if (configText !== null) {
    try {
      referenceConfig = JSON.parse(configText) as typeof referenceConfig;
    } catch (error) {
      throw new Error(`loadWingsCheckpoint: ${configPath} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const { tensors } = await loadShardedCheckpoint(path, { filter: (name) => WINGS_TENSOR_PATTERN.test(name) });
  try {
    const shape = wingsCheckpointShape(tensors, path);
    if (referenceConfig.lora_dim !== undefined && referenceConfig.lora_dim !== shape.rank) {
      throw new Error(`loadWingsCheckpoint: ${configPath} has lora_dim ${String(referenceConfig.lora_dim)}, the weights have rank ${shape.rank}`);
    }
    const compat = options.referenceCompat ?? 'reference';
    let systemPromptLength = options.systemPromptLength;
    if (systemPromptLength === undefined && typeof referenceConfig.system_prompt_length === 'number') {
      systemPromptLength = referenceConfig.system_prompt_length;
    }
    const needsPrompt = compat === 'reference' || (typeof compat === 'object' && compat.misalignedTextMask === true);
    if (needsPrompt && systemPromptLength === undefined) {
      throw new Error(
        `loadWingsCheckpoint: the reference text keys need systemPromptLength, and ${configPath} ` +
          `${configText === null ? 'does not exist' : 'has no system_prompt_length'}; pass { systemPromptLength } (14 for the released Qwen1.5 template)`,
      );
    }
    const attached = attachWings(model, {
      ...options,
      stage: shape.stage,
      rank: shape.rank,
      layers: shape.layers,
      routerMaxLength: shape.routerMaxLength,
      referenceCompat: compat,
      systemPromptLength,
    });
    try {
      attached.loadStateDict(tensors, { strict: true });
    } catch (error) {
      attached.remove();
      attached.module.dispose();
      throw error;
    }
    return wingsInjection(attached);
  } finally {
    disposeStateDict(tensors);
  }
}
