/**
 * What a Wings checkpoint directory holds, read the way the authors' code reads it:
 *
 * - `config.json`: the decoder's HF keys plus LLaVA's `mm_*` keys and Wings' own: `model_type`
 *   (`wings_qwen2` | `wings_llama`), `lora_dim`, `system_prompt_length` (tokens before the user's text that
 *   image samples leave out of the textual learner's keys: 14 for the released Qwen1.5 template),
 *   `image_token_length` (the visual tokens per image the learners' key positions assume: 729). It does not
 *   record which layers carry learners, whether there is a router, or its width: those come from the
 *   weight names and shapes (`wingsCheckpointShape`). `mm_hidden_size` is not the tower's width (the
 *   authors' `initialize_vision_modules` copies 1152 from `SigLipVisionTower`'s default config whatever
 *   the tower): the loader takes the width from the tower directory and the projector weight.
 * - weights: `model.safetensors` and every `model-000*.safetensors`, as the authors' `load_from_safetensors`
 *   globs them (a `model.safetensors.index.json` is not read: their loader ignores it).
 */
import { describeValue, disposeStateDict, loadShardedCheckpoint, nodeFilePromises, type StateDict } from '@mllm/core';

/** The Wings `model_type`s of `config.json` and the decoder family each wraps. */
export const WINGS_MODEL_TYPES = { wings_qwen2: 'qwen2', wings_llama: 'llama' } as const;

/** `wings_qwen2` (Qwen1.5 / Qwen2 decoder) or `wings_llama` (LLaMA-3.1 decoder). */
export type WingsModelType = keyof typeof WINGS_MODEL_TYPES;

/** The Wings keys of a checkpoint's `config.json`, checked. */
export interface WingsCheckpointConfig {
  modelType: WingsModelType;
  /** The decoder family (`qwen2` / `llama`). */
  decoder: (typeof WINGS_MODEL_TYPES)[WingsModelType];
  /** `lora_dim`: the learners' rank (checked against the weights). */
  loraDim: number;
  /** `system_prompt_length`. */
  systemPromptLength: number;
  /** `image_token_length`: visual tokens per image (the tower's patch count). */
  imageTokenLength: number;
}

const OWNER = 'loadWings';

function nonNegativeInt(json: Record<string, unknown>, key: string, where: string, min = 0): number {
  const value = json[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${OWNER}: ${where} ${key} must be an integer ≥ ${min}, got ${describeValue(value)}`);
  }
  return value;
}

/** Checks the Wings keys of a parsed `config.json` (`where` names the file in errors). */
export function resolveWingsCheckpointConfig(json: Record<string, unknown>, where = 'config.json'): WingsCheckpointConfig {
  const modelType = json.model_type;
  if (typeof modelType !== 'string' || !(modelType in WINGS_MODEL_TYPES)) {
    throw new Error(`${OWNER}: ${where} model_type must be ${Object.keys(WINGS_MODEL_TYPES).map((t) => `'${t}'`).join(' or ')}, got ${describeValue(modelType)}`);
  }
  const type = modelType as WingsModelType;
  return {
    modelType: type,
    decoder: WINGS_MODEL_TYPES[type],
    loraDim: nonNegativeInt(json, 'lora_dim', where, 1),
    systemPromptLength: nonNegativeInt(json, 'system_prompt_length', where),
    imageTokenLength: nonNegativeInt(json, 'image_token_length', where, 1),
  };
}

/** The weight files the authors' loader reads in `dir`: `model.safetensors` and `model-000*.safetensors`, sorted. */
export async function wingsWeightFiles(dir: string): Promise<string[]> {
  const { fs, path } = await nodeFilePromises(OWNER);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    throw new Error(`${OWNER}: could not read the checkpoint directory ${JSON.stringify(dir)}: ${(error as Error).message}`, { cause: error });
  }
  const files = names.filter((n) => n === 'model.safetensors' || (n.startsWith('model-000') && n.endsWith('.safetensors'))).sort();
  if (files.length === 0) {
    throw new Error(
      `${OWNER}: ${JSON.stringify(dir)} has no model.safetensors or model-000*.safetensors ` +
        `(the files Wings' load_from_safetensors reads; a model.safetensors.index.json alone is not used)`,
    );
  }
  return files.map((n) => path.join(dir, n));
}

/**
 * Every tensor of the checkpoint's weight files (`wingsWeightFiles`). A tensor stored in two files is an
 * error; on any error nothing is returned and nothing leaks.
 */
export async function readWingsWeights(dir: string): Promise<StateDict> {
  const files = await wingsWeightFiles(dir);
  const out: StateDict = new Map();
  const source = new Map<string, string>();
  try {
    for (const file of files) {
      const { tensors } = await loadShardedCheckpoint(file);
      const twice = [...tensors.keys()].find((name) => out.has(name));
      if (twice !== undefined) {
        disposeStateDict(tensors);
        throw new Error(`${OWNER}: tensor ${JSON.stringify(twice)} is stored in both ${JSON.stringify(source.get(twice))} and ${JSON.stringify(file)}`);
      }
      for (const [name, tensor] of tensors) {
        out.set(name, tensor);
        source.set(name, file);
      }
    }
  } catch (error) {
    disposeStateDict(out);
    throw error;
  }
  return out;
}
