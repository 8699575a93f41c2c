/**
 * Reading an HF-layout checkpoint directory (`config.json` + `model.safetensors`, or shards with
 * `model.safetensors.index.json`), shared by the decoder and vision-tower loaders. Node only; no network.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { loadShardedCheckpoint, loadStateDict, nodeFilePromises, type Module } from '@mllm/core';

/** The HF config file name. */
export const HF_CONFIG_FILE = 'config.json';

/**
 * Reads and parses `<dir>/config.json` (errors name `owner` and the path); `undefined` when the file is
 * absent and `optional`.
 */
export async function readCheckpointConfig(owner: string, dir: string, optional = false): Promise<Record<string, unknown> | undefined> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`${owner}: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const { fs, path } = await nodeFilePromises(owner);
  const configPath = path.join(dir, HF_CONFIG_FILE);
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
 * A second directory whose tensors join a checkpoint's under `prefix` (e.g. a vision tower directory beside a LLaVA
 * checkpoint that does not carry the tower's weights).
 */
export interface ExtraCheckpointSource {
  dir: string;
  /** Prepended to each tensor name of `dir` (e.g. `model.vision_tower.vision_tower.`). */
  prefix: string;
  /** Tensors of `dir` that are skipped (before the prefix is added). */
  ignore?: (name: string) => boolean;
}

/**
 * Loads `dir`'s weights into `model` (strict by default: a missing parameter, an unknown tensor other than
 * those `ignore` names, or a wrong shape is a `StateDictError` listing them). `extra`, given the names read
 * from `dir`, may name a second directory whose tensors are added (under a prefix) before the one load. On any
 * error the model is disposed, nothing is assigned and nothing leaks.
 */
export async function loadCheckpointWeights<M extends Module>(
  dir: string,
  model: M,
  options: { strict?: boolean },
  ignore: (name: string) => boolean = () => false,
  extra?: (names: ReadonlySet<string>) => ExtraCheckpointSource | null,
): Promise<M> {
  const tensors = new Map<string, Tensor>();
  try {
    try {
      for (const [name, t] of (await loadShardedCheckpoint(dir, { filter: (name) => !ignore(name) })).tensors) tensors.set(name, t);
      const more = extra?.(new Set(tensors.keys()));
      if (more) {
        const { tensors: added } = await loadShardedCheckpoint(more.dir, { filter: (name) => !(more.ignore?.(name) ?? false) });
        for (const [name, t] of added) {
          tensors.get(more.prefix + name)?.dispose();
          tensors.set(more.prefix + name, t);
        }
      }
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
