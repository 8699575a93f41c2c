/**
 * Loading a LLaVA-style checkpoint directory (Node only; no network: everything is read from local directories).
 *
 *   <dir>/config.json                      the LLaVA config (decoder keys + mm_* keys, `mm_vision_tower`)
 *   <dir>/model.safetensors                or shards + model.safetensors.index.json (F32 / F16 / BF16)
 *   <tower dir>/config.json                the tower's architecture (CLIP or SigLIP), found as below
 *   <tower dir>/model.safetensors          the tower's weights, read only when the checkpoint lacks
 *                                          `model.vision_tower.vision_tower.*`
 *
 * The checkpoint names the tower by a hub id or a path on the authors' machine (`mm_vision_tower`), so the
 * tower directory is `options.visionTowerDir`, else the sibling of `dir` named like the last component of
 * `mm_vision_tower` (`openai/clip-vit-large-patch14-336` → `<dir>/../clip-vit-large-patch14-336`).
 */
import { nodeFilePromises } from '@mllm/core';
import { loadCheckpointWeights, readCheckpointConfig } from '../checkpoint-dir.js';
import { isIgnoredHFTensor } from '../hf/load.js';
import { isIgnoredCLIPTensor, isIgnoredSiglipTensor } from '../vision/load.js';
import { LLAVA_VISION_TOWER_PREFIX, LlavaModel } from './llava-model.js';
import { resolveLlavaConfig } from './config.js';

export interface LoadLlavaModelOptions {
  /** The vision tower directory (its `config.json`, and its weights when the checkpoint lacks them). */
  visionTowerDir?: string;
  /** Every parameter must be in the checkpoint (or the tower directory) and nothing else (default true). */
  strict?: boolean;
}

export interface LlavaCheckpointConfigs {
  /** The LLaVA `config.json`. */
  config: Record<string, unknown>;
  /** The tower directory's `config.json`. */
  visionConfig: Record<string, unknown>;
  /** The tower directory used. */
  visionTowerDir: string;
}

const OWNER = 'loadLlavaModel';

/** Options of {@link readLlavaConfigs}. */
export interface ReadLlavaConfigsOptions extends Pick<LoadLlavaModelOptions, 'visionTowerDir'> {
  /**
   * `<dir>/config.json` already parsed by the caller (e.g. `@mllm/pretrained`'s `fromPretrained`, which reads it to
   * detect the layout): used as it is (a shallow copy) instead of reading the file again.
   */
  config?: Readonly<Record<string, unknown>>;
}

/**
 * Reads `<dir>/config.json` (unless `options.config` holds it) and the vision tower directory's `config.json` (see
 * the file comment for where the tower directory is looked for). A missing tower directory is an error saying what
 * to pass.
 */
export async function readLlavaConfigs(dir: string, options: ReadLlavaConfigsOptions = {}, owner = OWNER): Promise<LlavaCheckpointConfigs> {
  const given = options.config;
  if (given !== undefined && (typeof given !== 'object' || given === null || Array.isArray(given))) {
    throw new Error(`${owner}: options.config must be the parsed config.json object, got ${Array.isArray(given) ? 'an array' : JSON.stringify(given)}`);
  }
  const config = given !== undefined ? { ...given } : (await readCheckpointConfig(owner, dir))!;
  const resolved = resolveLlavaConfig(config);
  const { fs, path } = await nodeFilePromises(owner);
  let towerDir = options.visionTowerDir;
  if (towerDir != null && (typeof towerDir !== 'string' || towerDir.length === 0)) {
    throw new Error(`${owner}: options.visionTowerDir must be a directory path, got ${JSON.stringify(towerDir)}`);
  }
  if (towerDir == null) {
    const name = resolved.visionTowerName;
    if (!name) throw new Error(`${owner}: ${JSON.stringify(path.join(dir, 'config.json'))} names no vision tower (mm_vision_tower); pass options.visionTowerDir`);
    const base = name.replace(/[\\/]+$/, '').split(/[\\/]/).pop()!;
    const sibling = path.join(path.dirname(path.resolve(dir)), base);
    const exists = await fs.stat(path.join(sibling, 'config.json')).then(() => true, () => false);
    if (!exists) {
      throw new Error(
        `${owner}: the checkpoint's vision tower ${JSON.stringify(name)} (mm_vision_tower) was not found at ${JSON.stringify(sibling)}: ` +
          `download the tower (its config.json and weights) into that directory, or pass options.visionTowerDir`,
      );
    }
    towerDir = sibling;
  }
  const visionConfig = (await readCheckpointConfig(owner, towerDir))!;
  return { config, visionConfig, visionTowerDir: towerDir };
}

/**
 * Checkpoint tensors a `LlavaModel` does not use, skipped also by a strict load: the decoder's (`isIgnoredHFTensor`),
 * the tower's `position_ids` buffer, and for SigLIP the last encoder layer and the head (the LLaVA-family SigLIP
 * towers delete them; Bunny's checkpoints still carry them).
 */
export function isIgnoredLlavaTensor(name: string, model: LlavaModel): boolean {
  if (isIgnoredHFTensor(name, model.languageModel)) return true;
  const tower = `${LLAVA_VISION_TOWER_PREFIX}.`;
  return name.startsWith(tower) && isIgnoredTowerTensor(name.slice(tower.length), model);
}

function isIgnoredTowerTensor(name: string, model: LlavaModel): boolean {
  if (model.visionTowerType === 'clip') return isIgnoredCLIPTensor(name);
  const last = model.visionTower.visionConfig.numLayers - 1;
  return isIgnoredSiglipTensor(name) || name.startsWith(`vision_model.encoder.layers.${last}.`) || name.startsWith('vision_model.head.');
}

/**
 * Loads a checkpoint directory's weights into `model` (built from the same configs, possibly with modules
 * attached, whose parameters the checkpoint then carries too): the tower from the checkpoint when it holds
 * `model.vision_tower.vision_tower.*`, else from `visionTowerDir`. One strict load, all or nothing: on any error
 * the model is disposed and nothing leaks.
 */
export async function loadLlavaWeights(model: LlavaModel, dir: string, visionTowerDir: string, options: Pick<LoadLlavaModelOptions, 'strict'> = {}): Promise<LlavaModel> {
  const tower = `${LLAVA_VISION_TOWER_PREFIX}.`;
  return loadCheckpointWeights(dir, model, options, (name) => isIgnoredLlavaTensor(name, model), (names) => {
    for (const name of names) if (name.startsWith(tower)) return null;
    return { dir: visionTowerDir, prefix: tower, ignore: (name) => isIgnoredTowerTensor(name, model) };
  });
}

/**
 * `fromPretrained` for LLaVA-style checkpoints (`model_type` `llava_llama`, `llava_qwen2`, `bunny-qwen2`, …):
 * reads the configs (`readLlavaConfigs`), builds the `LlavaModel` and loads the weights (`loadLlavaWeights`).
 * Unknown projector or tower types, a missing tower directory and any weight mismatch are clear errors; on any
 * error nothing is returned and nothing leaks.
 */
export async function loadLlavaModel(dir: string, options: LoadLlavaModelOptions = {}): Promise<LlavaModel> {
  if (options === null || typeof options !== 'object') throw new Error(`${OWNER}: options must be an object, got ${String(options)}`);
  const { config, visionConfig, visionTowerDir } = await readLlavaConfigs(dir, options);
  const model = new LlavaModel({ config, visionConfig });
  return loadLlavaWeights(model, dir, visionTowerDir, options);
}
