/**
 * The LLaVA `config.json` (the original LLaVA layout that Parrot, Wings and Bunny checkpoints share):
 * the decoder's HF keys (`hidden_size`, `num_hidden_layers`, …) plus the multimodal keys
 *
 *   mm_vision_tower            the tower's name or path on the authors' machine (its architecture is in the
 *                              tower directory's own config.json)
 *   mm_hidden_size             Dv, the tower's feature width (checked against the tower config)
 *   mm_projector_type          `linear` | `mlp{N}x_gelu` | `identity`
 *   mm_vision_select_layer     hidden state fed to the projector (CLIP; default −2)
 *   mm_vision_select_feature   `patch` (drop CLS) | `cls_patch`
 *   tokenizer_padding_side     `right` (default) | `left`: how the spliced batch is padded
 *   image_aspect_ratio         `pad` | `square` | … (read by image preprocessing, recorded here)
 *   mm_patch_merge_type        only `flat` (anyres / spatial merging is not implemented)
 *
 * Every key read is checked; a wrong value is an error naming the key, the expected and the actual value.
 */
import { describeValue, type VisionSelectFeature } from '@mllm/core';
import { HF_DECODER_MODEL_TYPES, type HFDecoderModelType } from '../hf/config.js';

/** The multimodal keys of a LLaVA-style `config.json` (the decoder keys are `HFDecoderConfigJson`'s). */
export interface LlavaConfigJson {
  /** `llava` (with `architectures`), `llava_llama`, `llava_qwen2`, `parrot_qwen2`, `bunny-qwen2`, … (the decoder family is read from it). */
  model_type: string;
  mm_vision_tower?: string;
  mm_hidden_size?: number;
  mm_projector_type?: string;
  mm_vision_select_layer?: number;
  mm_vision_select_feature?: string;
  tokenizer_padding_side?: string;
  image_aspect_ratio?: string;
  mm_patch_merge_type?: string;
  [key: string]: unknown;
}

/** The tower families a LLaVA checkpoint may name. */
export type LlavaVisionTowerType = 'clip' | 'siglip';

/** The projector a LLaVA checkpoint names: `linear`, `identity`, or `mlp` of `depth` Linear layers with GELU between. */
export type LlavaProjectorSpec = { type: 'linear' } | { type: 'identity' } | { type: 'mlp'; depth: number };

export interface ResolvedLlavaConfig {
  /** The checkpoint's `model_type` as written (`llava_qwen2`, …). */
  modelType: string;
  /** The decoder family (`llama` / `qwen2`), from `model_type`. */
  decoderType: HFDecoderModelType;
  /** The decoder's `config.json` (the LLaVA config with `model_type` replaced by the decoder family). */
  decoderJson: Record<string, unknown>;
  visionTowerName: string | null;
  /** Dv from `mm_hidden_size` (null when the config does not say; the tower's width is used). */
  mmHiddenSize: number | null;
  projectorType: string;
  projector: LlavaProjectorSpec;
  selectLayer: number;
  selectFeature: VisionSelectFeature;
  paddingSide: 'left' | 'right';
  imageAspectRatio: string | null;
}

const OWNER = 'LLaVA config';

function fail(key: string, expected: string, got: unknown): never {
  throw new Error(`${OWNER}: ${key} must be ${expected}, got ${describeValue(got)}`);
}

/** `linear` / `identity` / `mlp{N}x_gelu` → the projector's spec; anything else is an error naming the supported types. */
export function parseLlavaProjectorType(type: unknown): LlavaProjectorSpec {
  if (type === 'linear') return { type: 'linear' };
  if (type === 'identity') return { type: 'identity' };
  const match = typeof type === 'string' ? /^mlp(\d+)x_gelu$/.exec(type) : null;
  if (match && Number(match[1]) >= 1) return { type: 'mlp', depth: Number(match[1]) };
  return fail('mm_projector_type', "'linear', 'identity' or 'mlp{N}x_gelu' (N ≥ 1)", type);
}

/**
 * The decoder family of a LLaVA config: from `model_type` (`llava_qwen2` → `qwen2`, `bunny-llama` → `llama`, plain
 * `qwen2`), else from `architectures[0]` (LLaVA-1.5's `model_type` is just `llava`, with `LlavaLlamaForCausalLM`).
 */
export function llavaDecoderType(modelType: unknown, architectures?: unknown): HFDecoderModelType {
  const names = [modelType, ...(Array.isArray(architectures) ? architectures.slice(0, 1) : [])];
  for (const name of names) {
    if (typeof name !== 'string') continue;
    const lower = name.toLowerCase();
    for (const family of HF_DECODER_MODEL_TYPES) if (lower.includes(family)) return family;
  }
  return fail('model_type', `a LLaVA model type naming its decoder (${HF_DECODER_MODEL_TYPES.join(' or ')}, e.g. 'llava_qwen2'), or architectures naming it (e.g. 'LlavaLlamaForCausalLM')`, modelType);
}

/** Check and resolve a parsed LLaVA `config.json`. Defaults are the reference code's `getattr` defaults. */
export function resolveLlavaConfig(json: LlavaConfigJson | Record<string, unknown>): ResolvedLlavaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('config', 'an object (the parsed config.json)', json);
  const c = json as LlavaConfigJson;
  const decoderType = llavaDecoderType(c.model_type, c.architectures);
  const tower = c.mm_vision_tower;
  if (tower != null && (typeof tower !== 'string' || tower.length === 0)) fail('mm_vision_tower', 'a tower name or path', tower);
  const mm = c.mm_hidden_size;
  if (mm != null && (!Number.isInteger(mm) || (mm as number) <= 0)) fail('mm_hidden_size', 'a positive integer', mm);
  const projectorType = c.mm_projector_type ?? 'linear'; // LLaVA's build_vision_projector default
  const projector = parseLlavaProjectorType(projectorType);
  const selectLayer = c.mm_vision_select_layer ?? -2;
  if (!Number.isInteger(selectLayer)) fail('mm_vision_select_layer', 'an integer (a hidden-state index, negative from the end)', selectLayer);
  const selectFeature = c.mm_vision_select_feature ?? 'patch';
  if (selectFeature !== 'patch' && selectFeature !== 'cls_patch') fail('mm_vision_select_feature', "'patch' or 'cls_patch'", selectFeature);
  const paddingSide = c.tokenizer_padding_side ?? 'right';
  if (paddingSide !== 'left' && paddingSide !== 'right') fail('tokenizer_padding_side', "'left' or 'right'", paddingSide);
  const merge = c.mm_patch_merge_type ?? 'flat';
  if (merge !== 'flat') fail('mm_patch_merge_type', "'flat' (anyres / spatial patch merging is not implemented)", merge);
  const aspect = c.image_aspect_ratio;
  if (aspect != null && typeof aspect !== 'string') fail('image_aspect_ratio', 'a string', aspect);
  return {
    modelType: c.model_type,
    decoderType,
    decoderJson: { ...c, model_type: decoderType },
    visionTowerName: tower ?? null,
    mmHiddenSize: mm ?? null,
    projectorType: projectorType as string,
    projector,
    selectLayer: selectLayer as number,
    selectFeature,
    paddingSide,
    imageAspectRatio: aspect ?? null,
  };
}

/**
 * The tower family of a tower `config.json` (`model_type` `clip` / `clip_vision_model` / `siglip` /
 * `siglip_vision_model`; without one, the tower name: `…siglip…` or `…clip…`, as LLaVA's `build_vision_tower`).
 */
export function llavaVisionTowerType(towerJson: Record<string, unknown>, towerName: string | null): LlavaVisionTowerType {
  const type = towerJson.model_type;
  if (type === 'clip' || type === 'clip_vision_model') return 'clip';
  if (type === 'siglip' || type === 'siglip_vision_model') return 'siglip';
  if (type == null && towerName) {
    const lower = towerName.toLowerCase();
    if (lower.includes('siglip')) return 'siglip';
    if (lower.includes('clip')) return 'clip';
  }
  throw new Error(
    `${OWNER}: the vision tower's config.json model_type must be 'clip', 'clip_vision_model', 'siglip' or 'siglip_vision_model', ` +
      `got ${describeValue(type)}${towerName ? ` (mm_vision_tower ${JSON.stringify(towerName)})` : ''}`,
  );
}
