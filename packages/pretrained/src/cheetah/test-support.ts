/**
 * Test support for the tiny Cheetah fixtures (`__fixtures__/tiny-vicuna`, `tiny-llama2`), shared by the
 * Cheetah tests and the one-command test. Not exported from the package entry.
 */
import type { LoadCheetahOptions } from './load.js';

/** The tiny shapes of the fixtures (the reference hard-wires ViT-g and BERT-base; these override them). */
export const TINY_CHEETAH: LoadCheetahOptions = {
  visionConfig: { patch_size: 4, embed_dim: 16, depth: 2, num_heads: 2, mlp_ratio: 4.3637, qkv_bias: true, layer_norm_eps: 1e-6 },
  qformerConfig: { hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32, layerNormEps: 1e-12 },
};

/** `tokenizer_config.json` of {@link chunkTokenizerJson}: LLaMA's special tokens. */
export const CHUNK_TOKENIZER_CONFIG = Object.freeze({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });

/**
 * The id the fixture script's stand-in tokenizer gives a chunk of up to 3 characters:
 * 3 + (Σ code points mod 37), so every id is below the fixtures' vocabulary of 40.
 */
export const chunkId = (chunk: string): number => 3 + ([...chunk].reduce((sum, ch) => sum + ch.codePointAt(0)!, 0) % 37);

/** A vocabulary holding the 3-character chunks of each text (ids from {@link chunkId}). */
export function chunkVocab(texts: readonly string[]): Record<string, number> {
  const vocab: Record<string, number> = {};
  for (const text of texts) for (let i = 0; i < text.length; i += 3) vocab[text.slice(i, i + 3)] = chunkId(text.slice(i, i + 3));
  return vocab;
}

/**
 * A WordLevel `tokenizer.json` that tokenizes as the Cheetah fixture's stand-in does: 3-character chunks
 * looked up in `vocab` (others are `<unk>` 0); BOS `<s>` = 1 from the post-processor, EOS `</s>` = 2.
 */
export function chunkTokenizerJson(vocab: Record<string, number>): object {
  return {
    version: '1.0', truncation: null, padding: null, normalizer: null, decoder: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    pre_tokenizer: { type: 'Split', pattern: { Regex: '[\\s\\S]{1,3}' }, behavior: 'Isolated', invert: false },
    post_processor: {
      type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    model: { type: 'WordLevel', vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, ...vocab }, unk_token: '<unk>' },
  };
}
