/**
 * Reading the MoE settings of a released Parrot `config.json` (`ParrotQwen2Config`).
 *
 * Keys (written by the reference's `initialize_moe_modules`): `num_experts`, `moe_hidden_size`,
 * `moe_intermediate_size`, `moe_weight`, `use_moe`, `use_moe_residual`, `moe_top_k`.
 *
 * The α pitfall: training uses `moe_weight = 0.1` (the `ModelArguments` default, written into the
 * config), but the reference module reads it with `getattr(config, 'moe_weight', 1.0)`, so a config
 * *without* the key silently gives α = 1.0. This reader mirrors that (`missingMoeWeight`, default
 * 1.0) and warns once per process (`console.warn`); pass `{ missingMoeWeight: 0.1 }` to get the
 * training value instead, or `{ missingMoeWeight: 1.0 }` to keep the fallback quietly.
 *
 * `moe_top_k` is stored by the reference but never used (routing is dense softmax); it is returned
 * as `referenceTopK` for information and does not enable this port's sparse routing.
 */
import type { ParrotMoEArgs } from './parrot-moe.js';

/** Options of {@link parseReferenceConfig}. */
export interface ReferenceConfigOptions {
  /** α when the config lacks `moe_weight` (default 1.0, the reference module's fallback). */
  missingMoeWeight?: number;
}

let missingMoeWeightWarned = false;

/**
 * The α = 1.0 fallback mirrors the reference but is rarely what a user wants (training used 0.1), so it
 * is said once per process; passing `missingMoeWeight` explicitly (1.0 included) is the quiet choice.
 */
function warnMissingMoeWeightOnce(): void {
  if (missingMoeWeightWarned) return;
  missingMoeWeightWarned = true;
  console.warn(
    "@mllm/parrot: the config has no 'moe_weight', so α = 1.0 (the reference module's fallback; training used 0.1). " +
      'Pass { missingMoeWeight: 0.1 } for the training value, or { missingMoeWeight: 1.0 } to keep the fallback without this warning.',
  );
}

/** {@link ParrotMoEArgs} read from a reference config, plus what was found. */
export interface ParsedReferenceConfig {
  args: ParrotMoEArgs;
  /** `moe_top_k` as stored (unused by the reference), or null when absent. */
  referenceTopK: number | null;
  /** Where α came from: the `moe_weight` key, or the missing-key fallback. */
  moeWeightSource: 'config' | 'fallback';
}

type JsonObject = Record<string, unknown>;

function requirePositiveInt(config: JsonObject, key: string): number {
  const value = config[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new Error(`ParrotMoE.fromReferenceConfig: '${key}' must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalBoolean(config: JsonObject, key: string, fallback: boolean): boolean {
  const value = config[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new Error(`ParrotMoE.fromReferenceConfig: '${key}' must be a boolean, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Parse the MoE part of a reference `config.json` (object or JSON text) into constructor args.
 * Missing booleans default like the reference's `getattr` fallbacks (`use_moe` and
 * `use_moe_residual` true); `num_experts`, `moe_hidden_size`, `moe_intermediate_size` are required.
 */
export function parseReferenceConfig(json: string | object, options: ReferenceConfigOptions = {}): ParsedReferenceConfig {
  const config = (typeof json === 'string' ? JSON.parse(json) : json) as JsonObject;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new Error(`ParrotMoE.fromReferenceConfig: config must be a JSON object, got ${JSON.stringify(config)}`);
  }
  const numExperts = requirePositiveInt(config, 'num_experts');
  const hiddenSize = requirePositiveInt(config, 'moe_hidden_size');
  const intermediateSize = requirePositiveInt(config, 'moe_intermediate_size');
  let moeWeight: number;
  let moeWeightSource: ParsedReferenceConfig['moeWeightSource'];
  if (config.moe_weight === undefined) {
    moeWeight = options.missingMoeWeight ?? 1.0;
    moeWeightSource = 'fallback';
    if (options.missingMoeWeight === undefined) warnMissingMoeWeightOnce();
  } else {
    if (typeof config.moe_weight !== 'number' || !Number.isFinite(config.moe_weight)) {
      throw new Error(`ParrotMoE.fromReferenceConfig: 'moe_weight' must be a finite number, got ${JSON.stringify(config.moe_weight)}`);
    }
    moeWeight = config.moe_weight;
    moeWeightSource = 'config';
  }
  const useMoe = optionalBoolean(config, 'use_moe', true);
  const useResidual = optionalBoolean(config, 'use_moe_residual', true);
  const feature = config.mm_vision_select_feature;
  if (useMoe && feature !== undefined && feature !== 'cls_patch') {
    throw new Error(
      `ParrotMoE.fromReferenceConfig: the MoE needs the CLS token (mm_vision_select_feature 'cls_patch'), got ${JSON.stringify(feature)}`,
    );
  }
  const topK = config.moe_top_k;
  const referenceTopK = typeof topK === 'number' && Number.isInteger(topK) ? topK : null;
  return {
    args: { hiddenSize, intermediateSize, numExperts, moeWeight, useMoe, useResidual },
    referenceTopK,
    moeWeightSource,
  };
}
