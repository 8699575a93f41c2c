/**
 * Loading vision-tower directories (`config.json` + `model.safetensors`, or shards with
 * `model.safetensors.index.json`). Node only; no network: the directory must be local.
 */
import { loadShardedCheckpoint, loadStateDict, type Module } from '@mllm/core';
import { HF_CONFIG_FILE } from '../hf/load.js';
import { CLIPVisionModel } from './clip.js';
import { SiglipVisionModel } from './siglip.js';
import { EVAVisionTransformer } from './eva.js';

export interface LoadVisionTowerOptions {
  /** Every parameter must be in the checkpoint and nothing else (default true). */
  strict?: boolean;
}

/** Reads and parses `<dir>/config.json`; `undefined` when the file is absent and `optional`. */
export async function readTowerConfig(owner: string, dir: string, optional = false): Promise<Record<string, unknown> | undefined> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`${owner}: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const configPath = nodePath.join(dir, HF_CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(configPath, 'utf8');
  } catch (error) {
    if (optional && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${owner}: could not read ${JSON.stringify(configPath)}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(configPath)} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Loads `dir`'s weights into `model` (strict by default: a missing parameter, an unknown tensor other than
 * those `ignore` names, or a wrong shape is a `StateDictError` listing them). On any error the model is
 * disposed, nothing is assigned and nothing leaks.
 */
export async function loadTowerWeights<M extends Module>(dir: string, model: M, options: LoadVisionTowerOptions, ignore: (name: string) => boolean = () => false): Promise<M> {
  try {
    const { tensors } = await loadShardedCheckpoint(dir, { filter: (name) => !ignore(name) });
    try {
      loadStateDict(model, tensors, { strict: options.strict ?? true });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/**
 * `fromPretrained` for a CLIP tower directory (e.g. `openai/clip-vit-large-patch14-336`): `config.json` (full
 * `CLIPConfig` or bare vision config) and the vision weights under `vision_model.*`. A full CLIP checkpoint's
 * text tower (`text_model.*`), `visual_projection`, `text_projection` and `logit_scale` are skipped, as
 * `CLIPVisionModel.from_pretrained` skips them; so is the `position_ids` buffer older checkpoints carry.
 */
export async function loadCLIPVisionTower(dir: string, options: LoadVisionTowerOptions = {}): Promise<CLIPVisionModel> {
  const json = await readTowerConfig('loadCLIPVisionTower', dir);
  const model = new CLIPVisionModel({ config: json! });
  return loadTowerWeights(dir, model, options, isIgnoredCLIPTensor);
}

/** The CLIP checkpoint tensors a vision tower does not use (see `loadCLIPVisionTower`). */
export function isIgnoredCLIPTensor(name: string): boolean {
  return name.startsWith('text_model.') || name.startsWith('visual_projection.') || name.startsWith('text_projection.')
    || name === 'logit_scale' || name === 'vision_model.embeddings.position_ids';
}

export interface LoadSiglipVisionTowerOptions extends LoadVisionTowerOptions {
  /** Build the tower as Parrot's / Wings' `SigLipVisionTower` uses it, without the last layer (default false). */
  dropLastLayer?: boolean;
}

/**
 * `fromPretrained` for a SigLIP tower directory (e.g. `google/siglip-so400m-patch14-384`): `config.json` and the
 * vision weights under `vision_model.*` (pooling head included). Skipped (also by a strict load): a full SigLIP
 * checkpoint's `text_model.*`, `logit_scale`, `logit_bias`, the `position_ids` buffer, and with `dropLastLayer`
 * the deleted layer's `vision_model.encoder.layers.{L−1}.*` and the replaced head `vision_model.head.*`: the
 * checkpoint is the full model, as `SigLipVisionModel.from_pretrained` reads it before `load_model` truncates it.
 */
export async function loadSiglipVisionTower(dir: string, options: LoadSiglipVisionTowerOptions = {}): Promise<SiglipVisionModel> {
  const json = await readTowerConfig('loadSiglipVisionTower', dir);
  const model = new SiglipVisionModel({ config: json!, dropLastLayer: options.dropLastLayer ?? false });
  const dropped = model.dropLastLayer ? [`vision_model.encoder.layers.${model.visionConfig.numLayers - 1}.`, 'vision_model.head.'] : [];
  return loadTowerWeights(dir, model, options, (name) => isIgnoredSiglipTensor(name) || dropped.some((p) => name.startsWith(p)));
}

/** The SigLIP checkpoint tensors a vision tower does not use (see `loadSiglipVisionTower`). */
export function isIgnoredSiglipTensor(name: string): boolean {
  return name.startsWith('text_model.') || name === 'logit_scale' || name === 'logit_bias'
    || name === 'vision_model.embeddings.position_ids';
}

export interface LoadEVAVisionTowerOptions extends LoadVisionTowerOptions {
  /** Include and load `ln_vision.*` (default true). */
  withLnVision?: boolean;
}

/**
 * Loads an EVA ViT tower directory: an optional `config.json` (`EVAVisionConfigJson`; absent: ViT-g as
 * `create_eva_vit_g` builds it) and weights under the Cheetah / BLIP-2 checkpoint names `visual_encoder.*` and
 * `ln_vision.*`. LAVIS' `eva_vit_g.pth` is a bare state dict (no `visual_encoder.` prefix) with one block more
 * than the 39 the model builds, which the reference loads non-strictly: store it under the prefix, and load with
 * `strict: false` or drop `visual_encoder.blocks.39.*`.
 */
export async function loadEVAVisionTower(dir: string, options: LoadEVAVisionTowerOptions = {}): Promise<EVAVisionTransformer> {
  const json = await readTowerConfig('loadEVAVisionTower', dir, true);
  const model = new EVAVisionTransformer({ config: json ?? {}, withLnVision: options.withLnVision ?? true });
  return loadTowerWeights(dir, model, options);
}
