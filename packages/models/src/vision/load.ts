/**
 * Loading vision-tower directories (`config.json` + `model.safetensors`, or shards with
 * `model.safetensors.index.json`). Node only; no network: the directory must be local.
 */
import { loadCheckpointWeights, readCheckpointConfig } from '../checkpoint-dir.js';
import { CLIPVisionModel } from './clip.js';
import { SiglipVisionModel } from './siglip.js';
import { EVAVisionTransformer } from './eva.js';

export interface LoadVisionTowerOptions {
  /** Every parameter must be in the checkpoint and nothing else (default true). */
  strict?: boolean;
}

/**
 * `fromPretrained` for a CLIP tower directory (e.g. `openai/clip-vit-large-patch14-336`): `config.json` (full
 * `CLIPConfig` or bare vision config) and the vision weights under `vision_model.*`. A full CLIP checkpoint's
 * text tower (`text_model.*`), `visual_projection`, `text_projection` and `logit_scale` are skipped, as
 * `CLIPVisionModel.from_pretrained` skips them; so is the `position_ids` buffer older checkpoints carry.
 */
export async function loadCLIPVisionTower(dir: string, options: LoadVisionTowerOptions = {}): Promise<CLIPVisionModel> {
  const json = await readCheckpointConfig('loadCLIPVisionTower', dir);
  const model = new CLIPVisionModel({ config: json! });
  return loadCheckpointWeights(dir, model, options, isIgnoredCLIPTensor);
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
  const json = await readCheckpointConfig('loadSiglipVisionTower', dir);
  const model = new SiglipVisionModel({ config: json!, dropLastLayer: options.dropLastLayer ?? false });
  const dropped = model.dropLastLayer ? [`vision_model.encoder.layers.${model.visionConfig.numLayers - 1}.`, 'vision_model.head.'] : [];
  return loadCheckpointWeights(dir, model, options, (name) => isIgnoredSiglipTensor(name) || dropped.some((p) => name.startsWith(p)));
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
  const json = await readCheckpointConfig('loadEVAVisionTower', dir, true);
  const model = new EVAVisionTransformer({ config: json ?? {}, withLnVision: options.withLnVision ?? true });
  return loadCheckpointWeights(dir, model, options);
}
