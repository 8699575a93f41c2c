/**
 * The Q-Former VPG as a registered projector kind: a host whose projector is a `QFormerVPG` records
 * it in its saved `config.json` (`projector`: BLIP-2 / BERT config names) and `loadHostModel` rebuilds
 * it, so a host + VPG-C directory loads back with one call.
 */
import { registerProjectorKind, type ModuleRecord, type ProjectorKind } from '@mllm/core';
import { name, version } from '../package.json';
import type { QFormerConfig } from './qformer-config.js';
import { QFormerVPG } from './qformer-vpg.js';

export const QFORMER_VPG_PROJECTOR_TYPE = 'qformer_vpg';

/** Q-Former config fields ↔ their BERT / BLIP-2 config names. */
const QFORMER_FIELDS: ReadonlyArray<[keyof QFormerConfig, string]> = [
  ['hiddenSize', 'hidden_size'],
  ['numHiddenLayers', 'num_hidden_layers'],
  ['numAttentionHeads', 'num_attention_heads'],
  ['intermediateSize', 'intermediate_size'],
  ['encoderWidth', 'encoder_width'],
  ['crossAttentionFreq', 'cross_attention_freq'],
  ['layerNormEps', 'layer_norm_eps'],
  ['hiddenDropoutProb', 'hidden_dropout_prob'],
  ['attentionProbsDropoutProb', 'attention_probs_dropout_prob'],
];

/** The saved record of a `QFormerVPG` (null for any other projector). */
export function qformerVpgRecord(projector: unknown): ModuleRecord | null {
  if (!(projector instanceof QFormerVPG)) return null;
  const qformer = Object.fromEntries(QFORMER_FIELDS.map(([js, ref]) => [ref, projector.qformer.config[js]]));
  return {
    module_type: QFORMER_VPG_PROJECTOR_TYPE,
    module_package: name,
    module_version: version,
    config: {
      qformer,
      num_query_token: projector.numQueryTokens,
      llm_hidden_size: projector.llmHiddenSize,
      ln_vision: projector.useLnVision,
      ln_vision_eps: projector.lnVisionEps,
      dropout_at_inference: projector.dropoutAtInference,
    },
  };
}

function field<T>(config: Record<string, unknown>, key: string, check: (v: unknown) => v is T, expected: string): T {
  const value = config[key];
  if (!check(value)) throw new Error(`qformer_vpg projector record: config.${key} must be ${expected}, got ${JSON.stringify(value)}`);
  return value;
}
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A fresh `QFormerVPG` from its record (weights are loaded by the caller). */
export function qformerVpgFromRecord(record: ModuleRecord): QFormerVPG {
  const c = record.config;
  const q = field(c, 'qformer', isObject, 'an object');
  const qformer: Partial<QFormerConfig> = {};
  for (const [js, ref] of QFORMER_FIELDS) {
    const value = q[ref];
    if (!isNumber(value)) throw new Error(`qformer_vpg projector record: config.qformer.${ref} must be a number, got ${JSON.stringify(value)}`);
    (qformer as Record<string, number>)[js] = value;
  }
  return new QFormerVPG({
    qformer,
    numQueryTokens: field(c, 'num_query_token', isNumber, 'a number'),
    llmHiddenSize: field(c, 'llm_hidden_size', isNumber, 'a number'),
    lnVision: field(c, 'ln_vision', isBoolean, 'a boolean'),
    lnVisionEps: field(c, 'ln_vision_eps', isNumber, 'a number'),
    dropoutAtInference: field(c, 'dropout_at_inference', isBoolean, 'a boolean'),
  });
}

export const QFORMER_VPG_PROJECTOR_KIND: ProjectorKind = {
  type: QFORMER_VPG_PROJECTOR_TYPE,
  packageName: name,
  version,
  recordOf: qformerVpgRecord,
  build: qformerVpgFromRecord,
};

registerProjectorKind(QFORMER_VPG_PROJECTOR_KIND);
