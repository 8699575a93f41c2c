// Writes what the tiny plain-LLaVA reference checkpoint of @mllm/models
// (packages/models/src/__fixtures__/reference/llava-qwen2-clip, vocabulary 64) does not ship but a
// user's checkpoint directory has: a HF tokenizer (tokenizer.json + tokenizer_config.json with
// Qwen2-Instruct's chat template) and the tower's preprocessor_config.json. The tests copy them beside
// the reference checkpoint to run `fromPretrained` / `mllm run` end to end.
// Run: node packages/pretrained/test-fixtures/llava/make-fixture.mjs
//
// The tokenizer is a character BPE (no byte level: 64 ids cannot hold 256 bytes) whose merges are
// learned here, deterministically, from the ChatML prompt the tests send, so prompts stay short enough
// for the checkpoint's 64 positions. Spaces are '▁' inside the model (SentencePiece-style: merges are
// written `left right`, so no token may hold a space). Characters outside its alphabet become
// <|endoftext|> (its unk).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const write = (dir, name, obj) => {
  mkdirSync(join(here, dir), { recursive: true });
  writeFileSync(join(here, dir, name), JSON.stringify(obj, null, 2) + '\n');
};

const VOCAB_SIZE = 64; // the checkpoint's vocab_size
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']; // ids 0, 1, 2 (config.json: eos_token_id 2)
// The text the BPE model sees: the ChatML prompt between its special tokens, and the tests' questions.
const CORPUS = ['system\nYou are a helpful assistant.', '\n', 'user\n', '\nWhat is in the picture?', 'assistant\n'];
const SPACE = '\u2581';
const alphabet = [...new Set([...CORPUS.join(''), ...'abcdefghijklmnopqrstuvwxyz ,'])].map((c) => (c === ' ' ? SPACE : c)).sort();

const vocab = {};
for (const token of [...SPECIALS, ...alphabet]) vocab[token] = Object.keys(vocab).length;
// BPE training on the corpus' words (a word: an optional leading '▁' or newline, then non-space
// characters): merge the most frequent adjacent pair (ties: the first in code-point order) until full.
let words = CORPUS.flatMap((text) => text.replaceAll(' ', SPACE).match(/[\u2581\n]?[^\u2581\n]+|\n/g)).map((word) => [...word]);
const merges = [];
while (Object.keys(vocab).length < VOCAB_SIZE) {
  const counts = new Map();
  for (const word of words) {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = `${word[i]}\u0000${word[i + 1]}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const [best] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  const [left, right] = best.split('\u0000');
  merges.push(`${left} ${right}`);
  vocab[left + right] = Object.keys(vocab).length;
  words = words.map((word) => {
    const out = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && word[i] === left && word[i + 1] === right) out.push(left + right), i++;
      else out.push(word[i]);
    }
    return out;
  });
}

const added = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
write('llava-qwen2-clip', 'tokenizer.json', {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: SPECIALS.map((token, id) => added(id, token)),
  normalizer: { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
  pre_tokenizer: null,
  post_processor: null,
  decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'Fuse' }] },
  model: {
    type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: false, ignore_merges: false, vocab, merges,
  },
});
// Qwen2-Instruct's chat template, verbatim (as in @mllm/models' qwen2-bpe tokenizer fixture).
write('llava-qwen2-clip', 'tokenizer_config.json', {
  bos_token: null,
  chat_template:
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  clean_up_tokenization_spaces: false,
  eos_token: '<|im_end|>',
  model_max_length: 64,
  pad_token: '<|endoftext|>',
  tokenizer_class: 'Qwen2Tokenizer',
  unk_token: '<|endoftext|>',
});
// The tower's processor as openai/clip-vit-large-patch14-336 ships it, scaled to the tiny tower's 12 px.
write('tiny-clip-vit-12', 'preprocessor_config.json', {
  crop_size: { height: 12, width: 12 },
  do_center_crop: true,
  do_convert_rgb: true,
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_processor_type: 'CLIPImageProcessor',
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  rescale_factor: 0.00392156862745098,
  size: { shortest_edge: 12 },
});
console.log(`vocabulary ${Object.keys(vocab).length}: ${SPECIALS.length} special, ${alphabet.length} characters, ${merges.length} merges`);
