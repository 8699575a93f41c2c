import { assertFiniteNumber, assertKnownKeys, assertOptionsObject, describeValue } from '@mllm/core';
/**
 * Configuration of the BLIP-2 Q-Former (LAVIS `BertConfig` as built by `Blip2Base.init_Qformer`).
 */

/** Sizes and constants of a Q-Former. All fields are required; use `qformerConfig()` for defaults. */
export interface QFormerConfig {
  /** Query/hidden width `Dq` (BERT-base: 768). */
  hiddenSize: number;
  /** Number of BERT layers (12). */
  numHiddenLayers: number;
  /** Attention heads (12; head width `Dq / heads`). */
  numAttentionHeads: number;
  /** Query FFN width (3072). */
  intermediateSize: number;
  /** Width `Dv` of the vision features the cross-attention reads (EVA ViT-g: 1408). */
  encoderWidth: number;
  /** Cross-attention in layers `i` with `i % crossAttentionFreq === 0` (2). */
  crossAttentionFreq: number;
  /** LayerNorm epsilon (1e-12, BERT). */
  layerNormEps: number;
  /** Dropout after dense layers and the embedding LayerNorm, active only when training (0.1). */
  hiddenDropoutProb: number;
  /** Dropout on attention probabilities, active only when training (0.1). */
  attentionProbsDropoutProb: number;
}

/** BLIP-2's Q-Former (FlanT5-XXL stage-1 checkpoint `blip2_pretrained_flant5xxl.pth`). */
export const BLIP2_QFORMER_CONFIG: Readonly<QFormerConfig> = Object.freeze({
  hiddenSize: 768,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  intermediateSize: 3072,
  encoderWidth: 1408,
  crossAttentionFreq: 2,
  layerNormEps: 1e-12,
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
});

/** BLIP-2 defaults overridden by `overrides`, validated. */
export function qformerConfig(overrides: Partial<QFormerConfig> = {}): QFormerConfig {
  assertOptionsObject('QFormerConfig', 'config', overrides);
  assertKnownKeys('QFormerConfig', overrides, Object.keys(BLIP2_QFORMER_CONFIG));
  const config: QFormerConfig = { ...BLIP2_QFORMER_CONFIG, ...overrides };
  validateQFormerConfig(config);
  return config;
}

/** Throw a clear error for an invalid configuration. */
export function validateQFormerConfig(config: QFormerConfig): void {
  for (const key of ['hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'encoderWidth', 'crossAttentionFreq'] as const) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new Error(`QFormerConfig: ${key} must be a positive integer, got ${describeValue(value)}`);
    }
  }
  if (config.hiddenSize % config.numAttentionHeads !== 0) {
    throw new Error(
      `QFormerConfig: hiddenSize (${config.hiddenSize}) must be divisible by numAttentionHeads (${config.numAttentionHeads})`,
    );
  }
  assertFiniteNumber('QFormerConfig', 'layerNormEps', config.layerNormEps);
  if (!(config.layerNormEps > 0)) throw new Error(`QFormerConfig: layerNormEps must be > 0, got ${config.layerNormEps}`);
  for (const key of ['hiddenDropoutProb', 'attentionProbsDropoutProb'] as const) {
    const value = config[key];
    if (typeof value !== 'number' || !(value >= 0 && value < 1)) throw new Error(`QFormerConfig: ${key} must be in [0, 1), got ${describeValue(value)}`);
  }
}

/** Whether layer `layerIndex` (0-based) has cross-attention: `layerIndex % crossAttentionFreq === 0`. */
export function hasCrossAttention(config: QFormerConfig, layerIndex: number): boolean {
  return layerIndex % config.crossAttentionFreq === 0;
}
