// Writes two tiny but real HF `tokenizer.json` (+ `tokenizer_config.json`) directories used by
// packages/models/src/tokenizer/hf-tokenizer.test.ts. Run: node packages/models/test-fixtures/tokenizers/make-tokenizers.mjs
// The vocabularies and merges are written by hand here so that the tests can derive the expected ids
// by applying the merges on paper (see the test file's comments).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const write = (dir, name, obj) => {
  mkdirSync(join(here, dir), { recursive: true });
  writeFileSync(join(here, dir, name), JSON.stringify(obj, null, 2) + '\n');
};
const added = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

// ---- Qwen2-style byte-level BPE -------------------------------------------------------------
// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 + n in byte order.
function bytesToUnicode() {
  const keep = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Map();
  let n = 0;
  for (let b = 0; b < 256; b++) map.set(b, keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++));
  return map;
}
const b2u = bytesToUnicode();
const qwenVocab = {};
for (let b = 0; b < 256; b++) qwenVocab[b2u.get(b)] = b; // id = byte value
const qwenMerges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or'];
for (const m of qwenMerges) qwenVocab[m.replace(' ', '')] = Object.keys(qwenVocab).length; // 256..262
const QWEN_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
write('qwen2-bpe', 'tokenizer.json', {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [added(263, '<|endoftext|>'), added(264, '<|im_start|>'), added(265, '<|im_end|>')],
  normalizer: { type: 'NFC' },
  pre_tokenizer: {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  },
  post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
  decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: qwenVocab, merges: qwenMerges,
  },
});
// The chat template is Qwen2-Instruct's, verbatim.
write('qwen2-bpe', 'tokenizer_config.json', {
  add_prefix_space: false,
  bos_token: null,
  chat_template:
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  clean_up_tokenization_spaces: false,
  eos_token: '<|im_end|>',
  errors: 'replace',
  model_max_length: 32768,
  pad_token: '<|endoftext|>',
  split_special_tokens: false,
  tokenizer_class: 'Qwen2Tokenizer',
  unk_token: null,
});

// ---- LLaMA SentencePiece-style BPE with byte fallback ----------------------------------------
const llamaVocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
for (let b = 0; b < 256; b++) llamaVocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b; // 3..258
for (const piece of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd']) llamaVocab[piece] = Object.keys(llamaVocab).length; // 259..266
const llamaMerges = ['h e', 'l l', 'he ll', 'hell o', '▁ hello', 'o r', '▁ w', '▁w or'];
for (const m of llamaMerges) llamaVocab[m.replace(' ', '')] = Object.keys(llamaVocab).length; // 267..274
write('llama-bpe', 'tokenizer.json', {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [
    { ...added(0, '<unk>') },
    { ...added(1, '<s>') },
    { ...added(2, '</s>') },
  ],
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: llamaVocab, merges: llamaMerges,
  },
});
write('llama-bpe', 'tokenizer_config.json', {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  clean_up_tokenization_spaces: false,
  eos_token: '</s>',
  legacy: false,
  model_max_length: 4096,
  pad_token: null,
  tokenizer_class: 'LlamaTokenizer',
  unk_token: '<unk>',
});
