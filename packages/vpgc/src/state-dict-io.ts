/**
 * Loading reference checkpoints (BLIP-2 / Cheetah key layout) and VPG-C adapter files.
 *
 * Key layout of the reference (`Cheetah_Vicuna` / `Cheetah_Llama2` `state_dict()`):
 *   VPG (frozen):  `ln_vision.*`, `Qformer.bert.embeddings.LayerNorm.*`, `Qformer.bert.encoder.layer.{i}.…`,
 *                  `query_tokens` [1, Nq, Dq], `llama_proj.{weight [H, Dq], bias}`
 *   VPG-C:         `llama_model.model.query_tokens` [1, Nq, Dq], `llama_model.model.qformer_proj.{weight [Dq, H], bias}`,
 *                  `llama_model.model.llm_proj.{weight [H, Dq], bias}`
 *   Duplicates:    `llama_model.model.Qformer.…` is the same module as `Qformer.…` (read as an alias).
 *   Ignored:       the Q-Former's text side in a BLIP-2 checkpoint (word/position embeddings, `position_ids`,
 *                  `cls.*`, per-layer `intermediate.*` / `output.*`), which the reference deletes too.
 */
import {
  StateDictError,
  loadStateDict,
  stateDict,
  suggestStateDictPrefix,
  toStateDict,
  type LoadStateDictResult,
  type StateDict,
  type StateDictInput,
} from '@mllm/core';
import type { QFormerVPG } from './qformer-vpg.js';
import type { VPGC } from './vpgc.js';

/** Prefix of the VPG-C tensors in the Cheetah checkpoint. */
export const VPGC_REFERENCE_PREFIX = 'llama_model.model.';

/** Reference keys of the Q-Former's unused text side (BLIP-2 checkpoints contain them). */
export const QFORMER_TEXT_SIDE_KEYS: readonly RegExp[] = Object.freeze([
  /^Qformer\.cls\./,
  /^Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings)\./,
  /^Qformer\.bert\.embeddings\.position_ids$/,
  /^Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\./,
]);

const VPG_KEY = /^(ln_vision\.|Qformer\.|query_tokens$|llama_proj\.)/;
const QFORMER_ALIAS = 'llama_model.model.Qformer.';

export interface LoadVPGOptions {
  /** Keys matching any of these are skipped (default `QFORMER_TEXT_SIDE_KEYS`). */
  ignore?: readonly RegExp[];
  /**
   * Missing VPG keys are an error (default true). A BLIP-2 checkpoint has no `llama_proj`: load it with
   * `strict: false`, or merge it with a Cheetah/MiniGPT-4 checkpoint that has one. Shape mismatches
   * always throw; keys outside the VPG (`visual_encoder.*`, `llama_model.*`, …) are always skipped.
   */
  strict?: boolean;
}

/**
 * Load a BLIP-2 / Cheetah checkpoint's VPG tensors (reference names and PyTorch layout) into `vpg`.
 * `llama_model.model.Qformer.*` duplicates are read as `Qformer.*` when the latter is absent.
 */
export function loadVPGStateDict(
  vpg: QFormerVPG,
  dict: StateDictInput,
  options: LoadVPGOptions = {},
): LoadStateDictResult {
  const ignore = options.ignore ?? QFORMER_TEXT_SIDE_KEYS;
  const source = toStateDict(dict);
  const selected: StateDict = new Map();
  for (const [rawKey, value] of source) {
    const key = rawKey.startsWith(QFORMER_ALIAS) ? `Qformer.${rawKey.slice(QFORMER_ALIAS.length)}` : rawKey;
    if (key !== rawKey && source.has(key)) continue; // the canonical name wins
    if (!VPG_KEY.test(key) || ignore.some((pattern) => pattern.test(key))) continue;
    if (key === 'ln_vision.weight' || key === 'ln_vision.bias') {
      if (!vpg.lnVision) continue; // features are already normalised
    }
    selected.set(key, value);
  }
  return loadStateDict(vpg, selected, { strict: options.strict ?? true });
}

/**
 * Load the five VPG-C tensors from a dict in the reference layout (`llama_model.model.query_tokens`,
 * `llama_model.model.{qformer_proj,llm_proj}.{weight,bias}`; prefix {@link VPGC_REFERENCE_PREFIX} unless
 * `options.prefix` says otherwise, `''` for `vpgc.stateDict()`); other keys are skipped. All five are
 * required unless `strict: false`; when they are all there under another prefix the error names it.
 */
export function loadVPGCStateDict(
  vpgc: VPGC,
  dict: StateDictInput,
  options: { strict?: boolean; prefix?: string } = {},
): LoadStateDictResult {
  const prefix = options.prefix ?? VPGC_REFERENCE_PREFIX;
  const own = vpgc.namedParameters().map(([name]) => name);
  const expected = new Set(own.map((name) => prefix + name));
  const source = toStateDict(dict);
  const selected: StateDict = new Map([...source].filter(([key]) => expected.has(key)));
  const strict = options.strict ?? true;
  if (strict && selected.size === 0) {
    // The filter above hid the dict's other names from loadStateDict: say here which prefix fits.
    const suggested = suggestStateDictPrefix(own, source, prefix);
    throw new StateDictError(vpgc.name, [...expected], [], [], [], suggested);
  }
  return loadStateDict(vpgc, selected, { prefix, strict });
}

/**
 * The five VPG-C tensors under their reference names, after `prefix` (default
 * {@link VPGC_REFERENCE_PREFIX}, what {@link loadVPGCStateDict} reads by default); new tensors, dispose them.
 * `vpgc.stateDict()` gives the same tensors without a prefix.
 */
export function vpgcStateDict(vpgc: VPGC, prefix = VPGC_REFERENCE_PREFIX): StateDict {
  return stateDict(vpgc, prefix);
}
