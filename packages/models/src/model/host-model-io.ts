/**
 * Save / load a HostMLLM directory: `config.json` (HostMLLMConfig + format tag) and
 * `model.safetensors` (reference names and layouts, via core's safetensors I/O). Node only.
 */
import {
  MlpGeluProjector, stateDict, loadStateDict, disposeStateDict, readSafetensorsFile, writeSafetensorsFile, type FloatStorageDtype, type VisualProjector,
} from '@mllm/core';
import { HostMLLM } from './host-mllm.js';
import type { HostMLLMConfig } from './config.js';

export const HOST_MODEL_FORMAT = 'mllm-host-v1';
export const HOST_CONFIG_FILE = 'config.json';
export const HOST_WEIGHTS_FILE = 'model.safetensors';

export interface SaveHostModelOptions {
  /** Also save the parameters of attached hooks' modules (default false). */
  includeHooks?: boolean;
  /** Storage of float32 weights (default F32). */
  floatDtype?: FloatStorageDtype;
}

export interface LoadHostModelOptions {
  /** Needed when the model was saved with a custom (non-mlp2x_gelu) projector. */
  projector?: VisualProjector;
  projectorName?: string;
}

interface SavedConfig extends HostMLLMConfig {
  format: string;
  projectorType: 'mlp2x_gelu';
  customProjector?: boolean;
}

async function joinPath(dir: string, file: string): Promise<string> {
  const path = await import('node:path');
  return path.join(dir, file);
}

/** Write `dir/config.json` and `dir/model.safetensors` (creates `dir`). */
export async function saveHostModel(model: HostMLLM, dir: string, options: SaveHostModelOptions = {}): Promise<void> {
  const fs = await import('node:fs/promises');
  await fs.mkdir(dir, { recursive: true });
  const config: SavedConfig = {
    format: HOST_MODEL_FORMAT,
    text: { ...model.textConfig },
    vision: { ...model.visionTower.visionConfig },
    projectorType: 'mlp2x_gelu',
    tokenizer: model.tokenizer.toJSON(),
  };
  if (!(model.projector instanceof MlpGeluProjector)) config.customProjector = true;
  const hookPrefixes = options.includeHooks ? [] : model.hookModuleNames.map((n) => `${n}.`);
  const dict = stateDict(model);
  try {
    const kept = [...dict].filter(([name]) => !hookPrefixes.some((p) => name.startsWith(p)));
    await writeSafetensorsFile(await joinPath(dir, HOST_WEIGHTS_FILE), kept, { format: 'pt' }, { floatDtype: options.floatDtype });
  } finally {
    disposeStateDict(dict);
  }
  await fs.writeFile(await joinPath(dir, HOST_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** Build a HostMLLM from `dir/config.json` and load `dir/model.safetensors` strictly. */
export async function loadHostModel(dir: string, options: LoadHostModelOptions = {}): Promise<HostMLLM> {
  const fs = await import('node:fs/promises');
  const configPath = await joinPath(dir, HOST_CONFIG_FILE);
  let config: SavedConfig;
  try {
    config = JSON.parse(await fs.readFile(configPath, 'utf8')) as SavedConfig;
  } catch (error) {
    throw new Error(`loadHostModel: cannot read ${configPath}: ${(error as Error).message}`);
  }
  if (config?.format !== HOST_MODEL_FORMAT) {
    throw new Error(`loadHostModel: ${configPath} must have format '${HOST_MODEL_FORMAT}', got ${JSON.stringify(config?.format)}`);
  }
  if (config.customProjector && !options.projector) {
    throw new Error('loadHostModel: the model was saved with a custom projector; pass options.projector');
  }
  const model = new HostMLLM({ config, projector: options.projector, projectorName: options.projectorName });
  try {
    const { tensors } = await readSafetensorsFile(await joinPath(dir, HOST_WEIGHTS_FILE));
    try {
      loadStateDict(model, tensors);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

