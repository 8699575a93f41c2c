/**
 * HF `config.json` of a decoder-only causal LM (`model_type` `llama` or `qwen2`), snake_case as
 * checkpoints ship it, resolved into the values the decoder uses. Unknown keys are ignored (released
 * configs carry many: `architectures`, `torch_dtype`, `bos_token_id`, …); every key the decoder reads is
 * checked and a wrong value is an error naming the key, the expected and the actual value.
 */
import { describeValue } from '@mllm/core';

/** The model families this decoder implements. */
export const HF_DECODER_MODEL_TYPES = ['llama', 'qwen2'] as const;
export type HFDecoderModelType = (typeof HF_DECODER_MODEL_TYPES)[number];

/** `rope_scaling` as HF writes it (`type` in older configs, `rope_type` in newer ones). */
export interface HFRopeScalingJson {
  type?: string;
  rope_type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** The `config.json` keys the decoder reads (HF names and defaults). */
export interface HFDecoderConfigJson {
  model_type: HFDecoderModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped KV heads; default `num_attention_heads` (no grouping). */
  num_key_value_heads?: number;
  /** Default `hidden_size / num_attention_heads`. */
  head_dim?: number;
  /** Only `silu` (both families). */
  hidden_act?: string;
  /** Default 2048 (llama) / 32768 (qwen2). */
  max_position_embeddings?: number;
  /** Default 1e-6. */
  rms_norm_eps?: number;
  /** Default 10000. */
  rope_theta?: number;
  rope_scaling?: HFRopeScalingJson | null;
  /** Default false: logits use `lm_head.weight`; true: the embedding matrix. */
  tie_word_embeddings?: boolean;
  /** LLaMA: bias on q/k/v/o (default false). Qwen2 always has q/k/v bias and none on o. */
  attention_bias?: boolean;
  /** Qwen2: must be false (the sliding window is not implemented). */
  use_sliding_window?: boolean;
  [key: string]: unknown;
}

/** Resolved rotary scaling. */
export type HFRopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface ResolvedHFDecoderConfig {
  modelType: HFDecoderModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  rmsEps: number;
  ropeTheta: number;
  ropeScaling: HFRopeScaling;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections. */
  qkvBias: boolean;
  /** Bias on the output projection. */
  outputBias: boolean;
}

const OWNER = 'HF decoder config';

function fail(key: string, expected: string, value: unknown): never {
  throw new Error(`${OWNER}: ${key} must be ${expected}, got ${describeValue(value)}`);
}

function positiveInt(json: Record<string, unknown>, key: string, fallback?: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(key, 'a positive integer', json[key]);
  return value;
}

function positiveNumber(json: Record<string, unknown>, key: string, fallback: number): number {
  const value = json[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(key, 'a positive finite number', json[key]);
  return value;
}

function bool(json: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = json[key] ?? fallback;
  if (typeof value !== 'boolean') fail(key, 'a boolean', json[key]);
  return value;
}

function resolveRopeScaling(value: unknown, maxPositionEmbeddings: number): HFRopeScaling {
  if (value === undefined || value === null) return { type: 'none' };
  if (typeof value !== 'object' || Array.isArray(value)) fail('rope_scaling', 'an object or null', value);
  const s = value as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  const number = (key: string, check: (v: number) => boolean, expected: string): number => {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) fail(`rope_scaling.${key}`, expected, v);
    return v;
  };
  switch (type) {
    case 'default':
      return { type: 'none' };
    case 'linear':
    case 'dynamic':
      return { type, factor: number('factor', (v) => v >= 1, 'a number ≥ 1') };
    case 'llama3': {
      const lowFreqFactor = number('low_freq_factor', (v) => v > 0, 'a positive number');
      const highFreqFactor = number('high_freq_factor', (v) => v > lowFreqFactor, `a number > low_freq_factor (${lowFreqFactor})`);
      return {
        type,
        factor: number('factor', (v) => v >= 1, 'a number ≥ 1'),
        lowFreqFactor,
        highFreqFactor,
        originalMaxPositionEmbeddings: s.original_max_position_embeddings === undefined
          ? maxPositionEmbeddings
          : number('original_max_position_embeddings', (v) => Number.isInteger(v) && v > 0, 'a positive integer'),
      };
    }
    default:
      return fail('rope_scaling.type', "one of 'default', 'linear', 'dynamic', 'llama3'", type);
  }
}

/**
 * Check and resolve a parsed `config.json` (`model_type` `llama` or `qwen2`). HF's defaults fill absent
 * keys (listed on `HFDecoderConfigJson`).
 */
export function resolveHFDecoderConfig(json: unknown): ResolvedHFDecoderConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('config', 'an object (parsed config.json)', json);
  const c = json as Record<string, unknown>;
  const modelType = c.model_type;
  if (!HF_DECODER_MODEL_TYPES.includes(modelType as HFDecoderModelType)) {
    fail('model_type', `one of ${HF_DECODER_MODEL_TYPES.map((t) => `'${t}'`).join(', ')}`, modelType);
  }
  const isQwen2 = modelType === 'qwen2';
  const hiddenSize = positiveInt(c, 'hidden_size');
  const numHeads = positiveInt(c, 'num_attention_heads');
  const numKeyValueHeads = positiveInt(c, 'num_key_value_heads', numHeads);
  if (numHeads % numKeyValueHeads !== 0) {
    fail('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`, numKeyValueHeads);
  }
  if (c.head_dim === undefined && hiddenSize % numHeads !== 0) {
    fail('hidden_size', `divisible by num_attention_heads (${numHeads}) when head_dim is absent`, hiddenSize);
  }
  const headDim = positiveInt(c, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) fail('head_dim', 'even (rotary pairs)', headDim);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') fail('hidden_act', "'silu'", act);
  if (isQwen2 && c.use_sliding_window === true) fail('use_sliding_window', 'false (the sliding window is not implemented)', true);
  const maxPositionEmbeddings = positiveInt(c, 'max_position_embeddings', isQwen2 ? 32768 : 2048);
  const attentionBias = bool(c, 'attention_bias', false);
  return {
    modelType: modelType as HFDecoderModelType,
    vocabSize: positiveInt(c, 'vocab_size'),
    hiddenSize,
    intermediateSize: positiveInt(c, 'intermediate_size'),
    numLayers: positiveInt(c, 'num_hidden_layers'),
    numHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings,
    rmsEps: positiveNumber(c, 'rms_norm_eps', 1e-6),
    ropeTheta: positiveNumber(c, 'rope_theta', 10000),
    ropeScaling: resolveRopeScaling(c.rope_scaling, maxPositionEmbeddings),
    tieWordEmbeddings: bool(c, 'tie_word_embeddings', false),
    qkvBias: isQwen2 ? true : attentionBias,
    outputBias: isQwen2 ? false : attentionBias,
  };
}
