/**
 * Load an HF LLaMA / Qwen2 checkpoint directory (`config.json` + `model.safetensors`, or shards with
 * `model.safetensors.index.json`) into an `HFCausalLM`. Node only. No network: the directory must be local.
 */
import { loadCheckpointWeights, readCheckpointConfig } from '../checkpoint-dir.js';
import { HFCausalLM } from './causal-lm.js';

export { HF_CONFIG_FILE } from '../checkpoint-dir.js';

export interface LoadHFCausalLMOptions {
  /** Every model parameter must be in the checkpoint and nothing else (default true; see `loadHFCausalLM`). */
  strict?: boolean;
}

/**
 * Tensors a checkpoint may carry that are not parameters and are skipped, also by a strict load:
 * `model.layers.{i}.self_attn.rotary_emb.inv_freq` (LLaMA checkpoints saved before HF made the buffer
 * non-persistent; the frequencies are recomputed from `rope_theta` / `rope_scaling`), and `lm_head.weight`
 * when `tie_word_embeddings` is true (HF ties it to the embedding whatever the file holds).
 */
export function isIgnoredHFTensor(name: string, model: HFCausalLM): boolean {
  const rotary = /^model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq$/.exec(name);
  if (rotary) return Number(rotary[1]) < model.layers.length;
  return name === 'lm_head.weight' && model.hfConfig.tieWordEmbeddings;
}

/**
 * `fromPretrained` for HF decoders: reads `<dir>/config.json` (`model_type` `llama` or `qwen2`), builds the
 * model and loads the weights (any float dtype safetensors stores: F32, F16, BF16 are read as float32).
 * Strict by default: a missing parameter, an unknown tensor (other than those `isIgnoredHFTensor` skips) or
 * a wrong shape is a `StateDictError` listing them. On any error nothing is returned and nothing leaks.
 */
export async function loadHFCausalLM(dir: string, options: LoadHFCausalLMOptions = {}): Promise<HFCausalLM> {
  const json = (await readCheckpointConfig('loadHFCausalLM', dir)) as Record<string, unknown>;
  const model = new HFCausalLM({ config: json });
  return loadCheckpointWeights(dir, model, options, (name) => isIgnoredHFTensor(name, model));
}
