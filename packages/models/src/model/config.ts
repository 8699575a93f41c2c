/** Configuration of the host decoder LM, the patch vision encoder and the host MLLM. */
import {
  assertPositiveInt, type VisionSelectFeature, assertBoolean, assertFiniteNumber, assertKnownKeys, assertOptionsObject,
} from '@mllm/core';
import type { TokenizerSpec } from '../tokenizer/byte-tokenizer.js';

/** Decoder-only LM (LLaMA/Qwen2 anatomy). */
export interface HostConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** SwiGLU inner width. */
  intermediateSize: number;
  /** Rotary θ (LLaMA 1e4, Qwen2 1e6). Default 10000. */
  ropeTheta?: number;
  /** RMSNorm ε. Default 1e-6. */
  rmsEps?: number;
  /** Longest spliced sequence (prompt + image tokens + generated). Default 2048. */
  maxLength?: number;
  /** lm_head shares `model.embed_tokens.weight` (no `lm_head.weight`). Default false. */
  tieEmbeddings?: boolean;
  /** Bias on q/k/v projections (Qwen2: true). Default false. */
  qkvBias?: boolean;
}


/** Small ViT: patchify → linear → +CLS → +position → pre-norm blocks → LayerNorm. */
export interface VisionConfig {
  /** Square input side in pixels. */
  imageSize: number;
  patchSize: number;
  /** Default 3. */
  numChannels?: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** LayerNorm ε. Default 1e-5. */
  layerNormEps?: number;
  /** Default 'patch'. */
  selectFeature?: VisionSelectFeature;
  /** Per-channel normalization `(x − mean)/std` of [0,1] pixels. Default 0.5 / 0.5. */
  imageMean?: number[];
  imageStd?: number[];
}

export interface HostMLLMConfig {
  text: HostConfig;
  vision: VisionConfig;
  /** Only `mlp2x_gelu` is built from config; other projectors are passed to the constructor. */
  projectorType?: 'mlp2x_gelu';
  tokenizer?: TokenizerSpec;
}

const HOST_CONFIG_KEYS = ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'ropeTheta', 'rmsEps', 'maxLength', 'tieEmbeddings', 'qkvBias'];
const VISION_CONFIG_KEYS = [
  'imageSize', 'patchSize', 'numChannels', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'layerNormEps', 'selectFeature', 'imageMean', 'imageStd',
];
// `format`, `customProjector`, `projector` and `mllm_modules` are the keys `saveHostModel` adds to config.json, which callers
// pass back in as it is.
const HOST_MLLM_CONFIG_KEYS = ['text', 'vision', 'projectorType', 'tokenizer', 'format', 'customProjector', 'projector', 'mllm_modules'];

/** A host MLLM config must be an object with `text` and `vision` objects and no unknown keys. */
export function checkHostMLLMConfig(config: HostMLLMConfig): void {
  assertOptionsObject('HostMLLM', 'config', config);
  assertKnownKeys('HostMLLMConfig', config, HOST_MLLM_CONFIG_KEYS);
  assertOptionsObject('HostMLLM', 'config.text', config.text);
  assertOptionsObject('HostMLLM', 'config.vision', config.vision);
}

export type ResolvedHostConfig = Required<HostConfig>;
export type ResolvedVisionConfig = Required<VisionConfig>;

/** Fill defaults and validate (errors name the field and the value). */
export function resolveHostConfig(config: HostConfig): ResolvedHostConfig {
  assertOptionsObject('HostConfig', 'config', config);
  assertKnownKeys('HostConfig', config, HOST_CONFIG_KEYS);
  for (const key of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize'] as const) {
    assertPositiveInt('HostConfig', key, config[key]);
  }
  const resolved: ResolvedHostConfig = {
    ropeTheta: 10000,
    rmsEps: 1e-6,
    maxLength: 2048,
    tieEmbeddings: false,
    qkvBias: false,
    ...config,
  };
  if (resolved.hiddenSize % resolved.numHeads !== 0) {
    throw new Error(`HostConfig: hiddenSize ${resolved.hiddenSize} must be divisible by numHeads ${resolved.numHeads}`);
  }
  if ((resolved.hiddenSize / resolved.numHeads) % 2 !== 0) {
    throw new Error(`HostConfig: head dim hiddenSize/numHeads = ${resolved.hiddenSize / resolved.numHeads} must be even (rotary)`);
  }
  assertFiniteNumber('HostConfig', 'ropeTheta', resolved.ropeTheta);
  assertFiniteNumber('HostConfig', 'rmsEps', resolved.rmsEps);
  assertBoolean('HostConfig', 'tieEmbeddings', resolved.tieEmbeddings);
  assertBoolean('HostConfig', 'qkvBias', resolved.qkvBias);
  if (!(resolved.ropeTheta > 0)) throw new Error(`HostConfig: ropeTheta must be > 0, got ${resolved.ropeTheta}`);
  if (!(resolved.rmsEps > 0)) throw new Error(`HostConfig: rmsEps must be > 0, got ${resolved.rmsEps}`);
  assertPositiveInt('HostConfig', 'maxLength', resolved.maxLength);
  return resolved;
}

export function resolveVisionConfig(config: VisionConfig): ResolvedVisionConfig {
  assertOptionsObject('VisionConfig', 'config', config);
  assertKnownKeys('VisionConfig', config, VISION_CONFIG_KEYS);
  for (const key of ['imageSize', 'patchSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize'] as const) {
    assertPositiveInt('VisionConfig', key, config[key]);
  }
  const numChannels = config.numChannels ?? 3;
  assertPositiveInt('VisionConfig', 'numChannels', numChannels);
  const resolved: ResolvedVisionConfig = {
    numChannels,
    layerNormEps: 1e-5,
    selectFeature: 'patch',
    imageMean: new Array(numChannels).fill(0.5),
    imageStd: new Array(numChannels).fill(0.5),
    ...config,
  };
  if (resolved.imageSize % resolved.patchSize !== 0) {
    throw new Error(`VisionConfig: imageSize ${resolved.imageSize} must be divisible by patchSize ${resolved.patchSize}`);
  }
  if (resolved.hiddenSize % resolved.numHeads !== 0) {
    throw new Error(`VisionConfig: hiddenSize ${resolved.hiddenSize} must be divisible by numHeads ${resolved.numHeads}`);
  }
  if (resolved.selectFeature !== 'patch' && resolved.selectFeature !== 'cls_patch') {
    throw new Error(`VisionConfig: selectFeature must be 'patch' or 'cls_patch', got ${JSON.stringify(resolved.selectFeature)}`);
  }
  for (const key of ['imageMean', 'imageStd'] as const) {
    if (!Array.isArray(resolved[key]) || resolved[key].length !== numChannels) {
      throw new Error(`VisionConfig: ${key} must have numChannels=${numChannels} entries, got ${JSON.stringify(resolved[key])}`);
    }
  }
  return resolved;
}
