/**
 * Cheetah's LAVIS-style YAML configuration, merged as the authors' `test_cheetah_vicuna.py` merges it
 * (`Config.build_model_config`): the model YAML that `model.arch` / `model.model_type` name
 * (`configs/models/cheetah_vicuna.yaml` for `pretrain_vicuna`, `cheetah_llama2.yaml` for `pretrain_llama2`),
 * then `{ model: <the eval YAML's model section> }` over it (OmegaConf's deep merge: later wins). The eval
 * YAML's own `preprocess` section is not merged (the model YAML's is what `Chat`'s `vis_processor` reads).
 * An optional `default.yaml` (the `env` section) goes under both.
 */
import { parse as parseYaml } from 'yaml';
import { describeValue, nodeFilePromises } from '@mllm/core';

/** The two released Cheetah models. */
export type CheetahArch = 'cheetah_vicuna' | 'cheetah_llama2';

/** Prompt style of an arch: Vicuna `###Human: … ###Assistant:` or LLaMA-2 `[INST] … [/INST]`. */
export type CheetahStyle = 'vicuna' | 'llama2';

/** `PRETRAINED_MODEL_CONFIG_DICT` of each arch: model type → model YAML file name. */
export const CHEETAH_MODEL_CONFIGS: Readonly<Record<CheetahArch, { modelType: string; file: string; style: CheetahStyle }>> = Object.freeze({
  cheetah_vicuna: { modelType: 'pretrain_vicuna', file: 'cheetah_vicuna.yaml', style: 'vicuna' },
  cheetah_llama2: { modelType: 'pretrain_llama2', file: 'cheetah_llama2.yaml', style: 'llama2' },
});

/**
 * The values of the authors' model YAMLs that the loader reads, used when no model YAML is given or found
 * (both `configs/models/cheetah_*.yaml` set these; `llama_model` there is a placeholder path).
 */
const MODEL_YAML_DEFAULTS = { image_size: 224, num_query_token: 32, vit_model: 'eva_clip_g' } as const;

/** What the loader takes from the merged configuration. */
export interface CheetahConfig {
  arch: CheetahArch;
  style: CheetahStyle;
  /** `model.image_size` (224): the ViT's input size. */
  imageSize: number;
  /** `preprocess.vis_processor.eval.image_size` (224): the eval transform's resize. */
  evalImageSize: number;
  /** `model.num_query_token` (32). */
  numQueryToken: number;
  /** `model.vit_model`: must be `eva_clip_g` (the reference asserts it). */
  vitModel: string;
  /** `model.llama_model`: the Vicuna / LLaMA-2 HF directory (as written; relative paths not yet resolved). */
  llamaModel?: string;
  /** `model.q_former_model`: the BLIP-2 checkpoint (a local path; the reference's default is a URL). */
  qFormerModel?: string;
  /** `model.ckpt`: the Cheetah checkpoint. */
  ckpt?: string;
  /** `model.update_layer` if the YAML sets one: recorded only, `Chat.answer` ignores it (see `loadCheetah`). */
  yamlUpdateLayer?: number;
  /** The whole merged configuration. */
  merged: Record<string, unknown>;
}

type Dict = Record<string, unknown>;

const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value);

/** OmegaConf.merge for plain YAML trees: dicts merge key by key, anything else is replaced. */
export function mergeConfigs(...configs: Dict[]): Dict {
  const out: Dict = {};
  for (const config of configs) {
    for (const [key, value] of Object.entries(config)) {
      out[key] = isDict(value) && isDict(out[key]) ? mergeConfigs(out[key] as Dict, value) : isDict(value) ? mergeConfigs(value) : value;
    }
  }
  return out;
}

async function readYaml(owner: string, path: string): Promise<Dict> {
  const { fs } = await nodeFilePromises(owner);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`${owner}: could not read ${JSON.stringify(path)}: ${(error as Error).message}`, { cause: error });
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(path)} is not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  if (value == null) return {};
  if (!isDict(value)) throw new Error(`${owner}: ${JSON.stringify(path)} must hold a YAML mapping, got ${describeValue(value)}`);
  return value;
}

function optionalString(owner: string, section: Dict, key: string, where: string): string | undefined {
  const value = section[key];
  if (value == null || value === '') return undefined;
  if (typeof value !== 'string') throw new Error(`${owner}: ${where}.${key} must be a string, got ${describeValue(value)}`);
  return value;
}

function positiveInt(owner: string, section: Dict, key: string, where: string, fallback: number): number {
  const value = section[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new Error(`${owner}: ${where}.${key} must be a positive integer, got ${describeValue(value)}`);
  }
  return value;
}

/** Validate a merged configuration and read what the loader needs. */
export function resolveCheetahConfig(merged: Dict, owner = 'resolveCheetahConfig'): CheetahConfig {
  const model = merged.model;
  if (!isDict(model)) throw new Error(`${owner}: the configuration has no 'model' section (got ${describeValue(model)})`);
  const arch = model.arch;
  if (arch !== 'cheetah_vicuna' && arch !== 'cheetah_llama2') {
    throw new Error(`${owner}: model.arch must be 'cheetah_vicuna' or 'cheetah_llama2', got ${describeValue(arch)}`);
  }
  const vitModel = optionalString(owner, model, 'vit_model', 'model') ?? MODEL_YAML_DEFAULTS.vit_model;
  if (vitModel !== 'eva_clip_g') throw new Error(`${owner}: model.vit_model must be 'eva_clip_g' (the only ViT Cheetah builds), got ${JSON.stringify(vitModel)}`);
  const imageSize = positiveInt(owner, model, 'image_size', 'model', MODEL_YAML_DEFAULTS.image_size);
  const pre = merged.preprocess;
  const evalSection = isDict(pre) && isDict(pre.vis_processor) && isDict(pre.vis_processor.eval) ? pre.vis_processor.eval : {};
  const yamlUpdate = model.update_layer;
  if (yamlUpdate !== undefined && (typeof yamlUpdate !== 'number' || !Number.isInteger(yamlUpdate) || yamlUpdate < 0)) {
    throw new Error(`${owner}: model.update_layer must be a non-negative integer, got ${describeValue(yamlUpdate)}`);
  }
  return {
    arch,
    style: CHEETAH_MODEL_CONFIGS[arch].style,
    imageSize,
    evalImageSize: positiveInt(owner, evalSection, 'image_size', 'preprocess.vis_processor.eval', imageSize),
    numQueryToken: positiveInt(owner, model, 'num_query_token', 'model', MODEL_YAML_DEFAULTS.num_query_token),
    vitModel,
    llamaModel: optionalString(owner, model, 'llama_model', 'model'),
    qFormerModel: optionalString(owner, model, 'q_former_model', 'model'),
    ckpt: optionalString(owner, model, 'ckpt', 'model'),
    yamlUpdateLayer: yamlUpdate as number | undefined,
    merged,
  };
}

export interface ReadCheetahConfigOptions {
  /**
   * The model YAML (`cheetah/configs/models/cheetah_vicuna.yaml` of the authors' repository). Default: the file
   * of that name beside the eval YAML when it exists, else the values both released model YAMLs set
   * (`image_size` 224, `num_query_token` 32, `vit_model` `eva_clip_g`, eval `image_size` 224).
   */
  modelConfig?: string;
  /** An optional `default.yaml` merged first (it only holds `env`). */
  defaultConfig?: string;
}

/**
 * Read Cheetah's configuration as `test_cheetah_vicuna.py` does: the eval YAML (`eval_configs/cheetah_eval_vicuna.yaml`)
 * over the model YAML of its `model.arch` / `model.model_type`. Node only.
 */
export async function readCheetahConfig(evalConfig: string, options: ReadCheetahConfigOptions = {}): Promise<CheetahConfig> {
  const owner = 'readCheetahConfig';
  if (typeof evalConfig !== 'string' || evalConfig.length === 0) throw new Error(`${owner}: evalConfig must be a YAML file path, got ${describeValue(evalConfig)}`);
  const { fs, path } = await nodeFilePromises(owner);
  const evalYaml = await readYaml(owner, evalConfig);
  const model = evalYaml.model;
  if (!isDict(model)) throw new Error(`${owner}: ${JSON.stringify(evalConfig)} has no 'model' section`);
  const arch = model.arch as CheetahArch;
  const known = CHEETAH_MODEL_CONFIGS[arch];
  if (!known) throw new Error(`${owner}: model.arch in ${JSON.stringify(evalConfig)} must be 'cheetah_vicuna' or 'cheetah_llama2', got ${describeValue(model.arch)}`);
  if (model.model_type !== undefined && model.model_type !== known.modelType) {
    throw new Error(`${owner}: model.model_type of ${arch} must be '${known.modelType}', got ${describeValue(model.model_type)}`);
  }
  let modelYaml: Dict = { model: { arch, ...MODEL_YAML_DEFAULTS }, preprocess: { vis_processor: { eval: { name: 'blip2_image_eval', image_size: 224 } } } };
  let modelPath = options.modelConfig;
  if (modelPath === undefined) {
    const beside = path.join(path.dirname(evalConfig), known.file);
    modelPath = await fs.stat(beside).then((s) => (s.isFile() ? beside : undefined), () => undefined);
  }
  if (modelPath !== undefined) modelYaml = await readYaml(owner, modelPath);
  const base = options.defaultConfig === undefined ? {} : await readYaml(owner, options.defaultConfig);
  return resolveCheetahConfig(mergeConfigs(base, modelYaml, { model }), owner);
}
