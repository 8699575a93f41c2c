/**
 * `config.json` of the vision towers the reference MLLMs use, snake_case as the tower directories ship it,
 * resolved into the values the towers read. Unknown keys are ignored (`projection_dim`, `text_config`,
 * `torch_dtype`, …); every key read is checked and a wrong value is an error naming the key, the expected
 * and the actual value.
 */
import { describeValue } from '@mllm/core';

/** MLP activations of the HF vision towers (`hidden_act`). */
export const VISION_ACTIVATIONS = ['quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new'] as const;
export type VisionActivation = (typeof VISION_ACTIVATIONS)[number];

/**
 * The resolved shape of a CLIP / SigLIP vision transformer. The patch grid is `⌊imageSize / patchSize⌋` per
 * side: a "valid" stride-p conv ignores the last `imageSize mod patchSize` rows and columns (so400m: 384 px,
 * patch 14 → 27 × 27 = 729 patches, 6 pixels unused).
 */
export interface ResolvedViTConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
  hiddenAct: VisionActivation;
}

/** The `config.json` keys of a CLIP / SigLIP vision config (HF names). */
export interface HFVisionConfigJson {
  model_type?: string;
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_channels?: number;
  image_size?: number;
  patch_size?: number;
  layer_norm_eps?: number;
  hidden_act?: string;
  /** A full `CLIPConfig` / `SiglipConfig` nests the vision part here. */
  vision_config?: HFVisionConfigJson;
  [key: string]: unknown;
}

function fail(owner: string, key: string, expected: string, value: unknown): never {
  throw new Error(`${owner}: ${key} must be ${expected}, got ${describeValue(value)}`);
}

function positiveInt(owner: string, json: Record<string, unknown>, key: string, fallback: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(owner, key, 'a positive integer', json[key]);
  return value;
}

function positiveNumber(owner: string, json: Record<string, unknown>, key: string, fallback: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(owner, key, 'a positive finite number', json[key]);
  return value;
}

function asObject(owner: string, key: string, json: unknown): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(owner, key, 'an object (parsed config.json)', json);
  return json as Record<string, unknown>;
}

type ViTDefaults = Omit<ResolvedViTConfig, 'hiddenAct'> & { hiddenAct: VisionActivation };

/**
 * The vision part of a tower config: `vision_config` of a full config (whose `model_type`, when given, must be
 * `outerType`), else the object itself (whose `model_type`, when given, must be `visionType`).
 */
function resolveViT(owner: string, json: unknown, outerType: string, visionType: string, defaults: ViTDefaults): ResolvedViTConfig {
  const outer = asObject(owner, 'config', json);
  let c = outer;
  if (outer.vision_config !== undefined) {
    if (outer.model_type !== undefined && outer.model_type !== outerType) fail(owner, 'model_type', `'${outerType}' (a config with vision_config)`, outer.model_type);
    c = asObject(owner, 'vision_config', outer.vision_config);
  }
  if (c.model_type !== undefined && c.model_type !== visionType) {
    fail(owner, c === outer ? 'model_type' : 'vision_config.model_type', `'${visionType}'${c === outer ? ` (or '${outerType}' with a vision_config)` : ''}`, c.model_type);
  }
  const hiddenSize = positiveInt(owner, c, 'hidden_size', defaults.hiddenSize);
  const numHeads = positiveInt(owner, c, 'num_attention_heads', defaults.numHeads);
  if (hiddenSize % numHeads !== 0) fail(owner, 'hidden_size', `divisible by num_attention_heads (${numHeads})`, hiddenSize);
  const imageSize = positiveInt(owner, c, 'image_size', defaults.imageSize);
  const patchSize = positiveInt(owner, c, 'patch_size', defaults.patchSize);
  if (patchSize > imageSize) fail(owner, 'patch_size', `at most image_size (${imageSize})`, patchSize);
  const act = c.hidden_act ?? defaults.hiddenAct;
  if (!VISION_ACTIVATIONS.includes(act as VisionActivation)) fail(owner, 'hidden_act', `one of ${VISION_ACTIVATIONS.map((a) => `'${a}'`).join(', ')}`, act);
  return {
    hiddenSize,
    intermediateSize: positiveInt(owner, c, 'intermediate_size', defaults.intermediateSize),
    numLayers: positiveInt(owner, c, 'num_hidden_layers', defaults.numLayers),
    numHeads,
    numChannels: positiveInt(owner, c, 'num_channels', defaults.numChannels),
    imageSize,
    patchSize,
    layerNormEps: positiveNumber(owner, c, 'layer_norm_eps', defaults.layerNormEps),
    hiddenAct: act as VisionActivation,
  };
}

/**
 * A CLIP tower's `config.json`: a full `CLIPConfig` (`model_type` `clip`, the tower under `vision_config`, as
 * `openai/clip-vit-large-patch14-336` ships it) or a bare `CLIPVisionConfig` (`clip_vision_model`). Absent keys
 * take HF `CLIPVisionConfig`'s defaults (ViT-B/32: hidden 768, 12 layers, 12 heads, 224 px, patch 32,
 * `quick_gelu`, eps 1e-5).
 */
export function resolveCLIPVisionConfig(json: unknown): ResolvedViTConfig {
  return resolveViT('CLIP vision config', json, 'clip', 'clip_vision_model', {
    hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12, numChannels: 3, imageSize: 224, patchSize: 32,
    layerNormEps: 1e-5, hiddenAct: 'quick_gelu',
  });
}

/**
 * A SigLIP tower's `config.json`: a full `SiglipConfig` (`model_type` `siglip` with `vision_config`) or a bare
 * vision config (`siglip_vision_model`). Absent keys take the defaults of the `SigLipVisionConfig` that Parrot
 * and Wings vendor (so400m-patch14-384: hidden 1152, intermediate 4304, 27 layers, 16 heads, 384 px, patch 14,
 * `gelu_pytorch_tanh`, eps 1e-6).
 */
export function resolveSiglipVisionConfig(json: unknown): ResolvedViTConfig {
  return resolveViT('SigLIP vision config', json, 'siglip', 'siglip_vision_model', {
    hiddenSize: 1152, intermediateSize: 4304, numLayers: 27, numHeads: 16, numChannels: 3, imageSize: 384, patchSize: 14,
    layerNormEps: 1e-6, hiddenAct: 'gelu_pytorch_tanh',
  });
}

/** EVA ViT shape: the keyword arguments of the reference `VisionTransformer`, snake_case. */
export interface EVAVisionConfigJson {
  model_type?: 'eva_vit';
  img_size?: number;
  patch_size?: number;
  embed_dim?: number;
  depth?: number;
  num_heads?: number;
  /** MLP width is `floor(embed_dim · mlp_ratio)` (6144 for ViT-g). */
  mlp_ratio?: number;
  qkv_bias?: boolean;
  layer_norm_eps?: number;
  /** eps of `ln_vision`, the LayerNorm BLIP-2 / Cheetah apply after the ViT. */
  ln_vision_eps?: number;
  in_chans?: number;
  [key: string]: unknown;
}

export interface ResolvedEVAVisionConfig {
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  mlpHidden: number;
  numChannels: number;
  qkvBias: boolean;
  layerNormEps: number;
  lnVisionEps: number;
}

/**
 * An EVA ViT config (`model_type` `eva_vit`). Absent keys take `create_eva_vit_g`'s values as BLIP-2 / Cheetah
 * build it: 224 px, patch 14, 1408 wide, 39 blocks, 16 heads, mlp_ratio 4.3637, q/v bias, LayerNorm eps 1e-6;
 * `ln_vision` eps 1e-5.
 */
export function resolveEVAVisionConfig(json: unknown = {}): ResolvedEVAVisionConfig {
  const owner = 'EVA vision config';
  const c = asObject(owner, 'config', json);
  if (c.model_type !== undefined && c.model_type !== 'eva_vit') fail(owner, 'model_type', "'eva_vit'", c.model_type);
  const hiddenSize = positiveInt(owner, c, 'embed_dim', 1408);
  const numHeads = positiveInt(owner, c, 'num_heads', 16);
  if (hiddenSize % numHeads !== 0) fail(owner, 'embed_dim', `divisible by num_heads (${numHeads})`, hiddenSize);
  const imageSize = positiveInt(owner, c, 'img_size', 224);
  const patchSize = positiveInt(owner, c, 'patch_size', 14);
  if (patchSize > imageSize) fail(owner, 'patch_size', `at most img_size (${imageSize})`, patchSize);
  const mlpRatio = positiveNumber(owner, c, 'mlp_ratio', 4.3637);
  const qkvBias = c.qkv_bias ?? true;
  if (typeof qkvBias !== 'boolean') fail(owner, 'qkv_bias', 'a boolean', c.qkv_bias);
  const mlpHidden = Math.floor(hiddenSize * mlpRatio); // Python's int(dim * mlp_ratio)
  if (mlpHidden < 1) fail(owner, 'mlp_ratio', `at least 1 / embed_dim (${1 / hiddenSize})`, mlpRatio);
  return {
    imageSize,
    patchSize,
    hiddenSize,
    numLayers: positiveInt(owner, c, 'depth', 39),
    numHeads,
    mlpHidden,
    numChannels: positiveInt(owner, c, 'in_chans', 3),
    qkvBias,
    layerNormEps: positiveNumber(owner, c, 'layer_norm_eps', 1e-6),
    lnVisionEps: positiveNumber(owner, c, 'ln_vision_eps', 1e-5),
  };
}
